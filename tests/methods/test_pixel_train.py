"""The point head's recipe: `python -m egokit.recipes.train pixel --quick` end to end, resume, batches, learning."""

from __future__ import annotations

import json

import numpy as np
import torch

import egokit.methods.pixel.locate as pixel
import egokit.recipes.train as train
from egokit.data.shapesworld import ShapesWorld
from egokit.methods.pixel.head import PointHead
from egokit.methods.pixel.training import (
    IGNORE,
    Collator,
    PixelRecipe,
    batch_losses,
    load_base,
    make_examples,
)


def test_quick_recipe_trains_resumes_and_ships_a_loadable_head(tmp_path, capsys):
    out, run = tmp_path / "head", tmp_path / "run"
    assert train.main(["pixel", "--quick", "--out", str(out), "--run-dir", str(run), "--device", "cpu"]) == 0
    head = pixel.load_head(out)
    info = json.loads((out / "training.json").read_text())
    assert info["steps"] == 3 and info["recipe"]["mode"] == "box" and info["kind"] == "pixel"
    assert list(head.layer_states) == [1] and head.readout and head.meta["base_model"] == "tiny:llava"
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
    recipe.batch, recipe.refer_share = 6, 0.5
    world = ShapesWorld(seed=0, split="train")
    examples, images = make_examples(world, np.random.default_rng([0, 21, 0]), recipe)
    assert {e.caption_loss for e in examples} == {True, False}
    batch = Collator(base)(examples, images)
    tok = base.processor.tokenizer
    for i, ex in enumerate(examples):
        ids = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        words = tok.convert_ids_to_tokens(ids)
        n = len(ex.words)
        start = len(ids) - n - (1 if ex.caption_loss else 0)
        assert words[start:start + n] == ex.words
        has = batch["has_target"][i]
        expected = [b is not None for b in ex.boxes]
        assert has[start:start + n].tolist() == expected and not has[:start].any()
        labels = batch["labels"][i]
        if ex.caption_loss:
            assert labels[start:start + n + 1].tolist() == ids[start:] and (labels[:start] == IGNORE).all()
        else:
            assert (labels == IGNORE).all()
        k = next(j for j, b in enumerate(ex.boxes) if b is not None)
        assert batch["targets"][i, start + k].tolist() == [v / 64 for v in ex.boxes[k]]
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
