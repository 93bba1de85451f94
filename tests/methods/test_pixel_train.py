"""The point head's recipe: `python -m egokit.recipes.train pixel --quick` end to end, resume, batches, learning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import egokit.methods.pixel.locate as pixel
import egokit.recipes.train as train
from egokit.data.shapesworld import ShapesWorld
from egokit.methods.pixel.head import FEATURES, LAYER_INPUTS, PointHead, decoder_layers, feature_hooks
from egokit.methods.pixel.training import (
    IGNORE,
    Collator,
    PixelRecipe,
    batch_losses,
    load_base,
    make_examples,
    step_loss,
    tuned_layer_ids,
)


def test_quick_recipe_trains_resumes_and_ships_a_loadable_head(tmp_path, capsys):
    out, run = tmp_path / "head", tmp_path / "run"
    assert train.main(["pixel", "--quick", "--out", str(out), "--run-dir", str(run), "--device", "cpu"]) == 0
    head = pixel.load_head(out)
    info = json.loads((out / "training.json").read_text())
    assert info["steps"] == 3 and info["recipe"]["mode"] == "box" and info["kind"] == "pixel"
    assert list(head.layer_states) == [0, 1] and head.readout and head.meta["base_model"] == "tiny:llava"
    curve = info["loss_curve"]
    assert curve["columns"][:3] == ["step", "ce", "l1"] and curve["rows"][-1][0] == 3
    base = load_base("tiny:llava", torch.device("cpu"))
    assert head.meta["base_fingerprint"] == base.fingerprint()  # the untouched base model's fingerprint
    scene = ShapesWorld(seed=0, split="test").scene(0)
    assert pixel.refer(base, head, scene, "the circle").box  # usable on the base model
    assert train.main(["pixel", "--quick", "--steps", "4", "--out", str(out), "--run-dir", str(run),
                       "--device", "cpu"]) == 0
    assert "resuming point-head training at step 3" in capsys.readouterr().out
    assert train.main(["pixel", "--quick", "--mode", "trace", "--out", str(tmp_path / "trace"),
                       "--run-dir", str(tmp_path / "run-trace"), "--device", "cpu"]) == 0
    assert pixel.load_head(tmp_path / "trace").meta["mode"] == "trace"


def test_collated_batches_put_targets_on_answer_tokens_and_loss_on_captions():
    base = load_base("tiny:llava", torch.device("cpu"))
    recipe = PixelRecipe.quick()
    recipe.batch, recipe.refer_share, recipe.answer_position = 6, 0.5, False
    world = ShapesWorld(seed=0, split="train")
    examples, images = make_examples(world, np.random.default_rng([0, 21, 0]), recipe)
    assert {e.caption_loss for e in examples} == {True, False}
    batch = Collator(base)(examples, images)
    tok = base.processor.tokenizer
    for i, ex in enumerate(examples):
        ids = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        words = tok.convert_ids_to_tokens(ids)
        n = len(ex.words)
        start = len(ids) - n - 1
        assert words[start:start + n] == ex.words and ids[-1] == tok.eos_token_id  # every answer ends with eos
        has = batch["has_target"][i]
        labels = batch["labels"][i]
        if ex.caption_loss:  # captions: every word with a box has a target; cross-entropy on words and eos
            expected = [b is not None for b in ex.boxes]
            assert has[start:start + n].tolist() == expected and not has[:start].any() and not has[-1]
            assert labels[start:start + n + 1].tolist() == ids[start:] and (labels[:start] == IGNORE).all()
            k = next(j for j, b in enumerate(ex.boxes) if b is not None)
            assert batch["targets"][i, start + k].tolist() == [v / 64 for v in ex.boxes[k]]
        else:  # referring: no cross-entropy; only the last expression token (before eos) has a target
            assert (labels == IGNORE).all()
            assert has.nonzero().flatten().tolist() == [start + n - 1]
            assert batch["targets"][i, start + n - 1].tolist() == [v / 64 for v in ex.last_token_box]
    assert batch["scale"].tolist() == [[64.0, 64.0, 64.0, 64.0]] * 6  # the model's view, in pixels
    assert batch["pixel_values"].shape == (6, 3, 64, 64)
    image_id = base.model.config.image_token_id
    for i in range(6):  # the read-out's image tokens: where the ids are, with their cells' centres
        assert (batch["input_ids"][i, batch["image_positions"][i]] == image_id).all()
    assert batch["centres"].shape == (6, 64, 2) and batch["centres"][0, 0].tolist() == [1 / 16, 1 / 16]


def test_the_point_loss_trains_the_head():
    base = load_base("tiny:llava", torch.device("cpu"))
    base.model.requires_grad_(False)
    recipe = PixelRecipe.quick()
    recipe.batch = 8
    examples, images = make_examples(ShapesWorld(seed=0, split="train"), np.random.default_rng(0), recipe)
    batch = Collator(base)(examples, images)
    for readout in (False, True):
        torch.manual_seed(0)
        head = PointHead(32, hidden=32, readout=readout)
        opt = torch.optim.Adam(head.parameters(), lr=3e-3)
        first = float(batch_losses(base, head, batch, torch.device("cpu"))["l1"].detach())
        for _ in range(60):
            loss = batch_losses(base, head, batch, torch.device("cpu"))["l1"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert float(loss.detach()) < 0.7 * first


def test_model_card_has_recipe_command_seed_time_and_metrics(tmp_path):
    from egokit.recipes.pixel_card import main as card_main

    out = tmp_path / "micro-pixel"
    assert train.main(["pixel", "--quick", "--out", str(out), "--run-dir", str(tmp_path / "run"),
                       "--device", "cpu"]) == 0
    metrics = {"word_in_box": 0.91, "word_in_box_center_baseline": 0.2, "refer_p50": 0.8, "n_scenes": 5,
               "n_object_words": 40, "n_refer": 10, "seed": 1, "model": "tiny:llava",
               "refer_p50_by_objects": {"1": 1.0, "2": 0.25}}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    (tmp_path / "t.json").write_text(json.dumps({"word_in_box": 0.7}))
    assert card_main([str(out), str(tmp_path / "m.json"), "--extra", "trace targets", str(tmp_path / "t.json")]) == 0
    text = (out / "README.md").read_text()
    assert "python -m egokit.recipes.train pixel --seed 0" in text and "| `word_in_box` | 0.910 |" in text
    assert "egokit pixel eval --json --seed 1 --n 5" in text and "### trace targets" in text
    assert "wall time" in text and "cpu" in text
    assert "| `refer_p50_by_objects.2` | 0.250 |" in text and "| `n_refer` | 10 |" in text


def _refer_batch(base, answer_position=False, n=4):
    """A batch of referring expressions only (tiny random LLaVA)."""
    from egokit.methods.pixel.targets import refer_example

    rng = np.random.default_rng(3)
    examples, images = [], []
    for scene in ShapesWorld(seed=0, split="train", min_objects=2).scenes(40):
        ex = refer_example(scene, len(images), rng, answer_position=answer_position)
        if ex is not None:
            examples.append(ex)
            images.append(scene.image)
        if len(examples) == n:
            break
    return examples, Collator(base)(examples, np.stack(images))


def test_referring_follows_pixelllm_rule_on_a_tiny_model():
    """PixelLLM's referring task (official `point_output_ignore='^end-1'`): the teacher-forced expression ends
    with eos, carries no caption loss, and only its last token has a box target (its two corners)."""
    from egokit.methods.pixel.targets import refer_example

    base = load_base("tiny:llava", torch.device("cpu"))
    tok = base.processor.tokenizer
    examples, batch = _refer_batch(base)
    for i, ex in enumerate(examples):
        ids = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        n = len(ex.words)
        assert ids[-1] == tok.eos_token_id and tok.convert_ids_to_tokens(ids[-1 - n:-1]) == ex.words
        targeted = batch["has_target"][i].nonzero().flatten().tolist()
        assert targeted == [len(ids) - 2]                                   # the token eos follows
        assert ex.boxes == [None] * n and ex.caption_loss is False
        assert (batch["labels"][i] == IGNORE).all()                          # no caption loss
        assert batch["targets"][i, len(ids) - 2].tolist() == [v / 64 for v in ex.last_token_box]
    # the non-paper option adds the answer position (the prompt's last token), and only it
    scene = next(s for s in ShapesWorld(seed=0, split="train", min_objects=2).scenes(40)
                 if refer_example(s, 0, np.random.default_rng(0)) is not None)
    ex = refer_example(scene, 0, np.random.default_rng(0), answer_position=True)
    b = Collator(base)([ex], scene.image[None])
    ids = b["input_ids"][0].tolist()
    n = len(ex.words)
    assert b["has_target"][0].nonzero().flatten().tolist() == [len(ids) - n - 2, len(ids) - 2]


def test_the_point_loss_is_an_l1_in_pixels_weighted_0_1():
    base = load_base("tiny:llava", torch.device("cpu"))
    _, batch = _refer_batch(base)
    torch.manual_seed(0)
    head = PointHead(32, hidden=16)
    losses = batch_losses(base, head, batch, torch.device("cpu"))
    with torch.no_grad(), feature_hooks(base) as hooks:
        base.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   pixel_values=batch["pixel_values"])
        states = hooks[LAYER_INPUTS]
        image = states.gather(1, batch["image_positions"][..., None].expand(-1, -1, states.shape[-1]))
        pred = head(hooks[FEATURES], image, batch["centres"])[batch["has_target"]].flatten(-2)
    fractions = (pred - batch["targets"][batch["has_target"]]).abs().mean()
    assert float(losses["l1"].detach()) == pytest.approx(64 * float(fractions), rel=1e-4)  # the 64-pixel view
    recipe = PixelRecipe()
    assert recipe.point_weight == 0.1
    total = step_loss(recipe, losses, with_caption=True)
    ce, l1 = float(losses["ce"].detach()), float(losses["l1"].detach())
    assert float(total.detach()) == pytest.approx(ce + 0.1 * l1, rel=1e-5)


def test_the_localisation_loss_reaches_every_decoder_layer():
    base = load_base("tiny:llava", torch.device("cpu"))
    base.model.requires_grad_(False)
    layers = decoder_layers(base)
    n_tuned = tuned_layer_ids(PixelRecipe(), len(layers))
    assert n_tuned == list(range(len(layers)))                                # the default: every layer
    for i in n_tuned:
        layers[i].requires_grad_(True)
    try:
        _, batch = _refer_batch(base)                                            # referring only: no caption loss
        losses = batch_losses(base, PointHead(32, hidden=16), batch, torch.device("cpu"))
        assert float(losses["ce"].detach()) == 0.0
        losses["l1"].backward()
        for i, layer in enumerate(layers):
            grads = [p.grad for p in layer.parameters() if p.grad is not None]
            assert grads and any(float(g.abs().sum()) > 0 for g in grads), f"no gradient reaches layer {i}"
    finally:
        base.model.requires_grad_(False)
        base.model.zero_grad(set_to_none=True)
