"""The micro CLIP's second recipe (`ClipRecipe.v2`, `--recipe v2`): hard negatives of every foil kind and the
swapped object order from the first step, dense targets of size and place, bf16 autocast, the loss log, and
the card's pair accuracy per foil kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import egokit
import egokit.recipes.train as train
import egokit.training as runtime
from egokit.data.captions import FOIL_KINDS, order_swap, relation_holds, relation_word
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import InputError
from egokit.recipes.clip import ClipData, ClipRecipe, DenseHeads, build_clip, clip_losses, pick_negatives
from egokit.recipes.patch_targets import (
    ALL_TARGETS,
    TARGET_CLASSES,
    locality_probe,
    object_targets,
    patch_targets,
)


def _scene_with(world, n_objects, start=0):
    return next(s for s in world.scenes(200, start) if len(s.objects) == n_objects)


def test_order_swap_exchanges_two_noun_phrases_keeps_every_other_word_and_is_false():
    world = ShapesWorld(seed=0, split="train", holdout="default")
    rng = np.random.default_rng(0)
    for n in (2, 3):
        scene = _scene_with(world, n)
        swapped = order_swap(scene.caption_tokens, scene.objects, rng)
        assert swapped is not None and swapped != scene.caption
        assert sorted(swapped.split()) == sorted(scene.caption.split())   # the same words, another order
        relations = [w.text for w in scene.caption_tokens if w.role == "relation"]
        assert [t for t in swapped.split() if t in ("left", "right", "above", "below")] == relations
    # two objects: "B <rel> A" where the scene has "A <rel> B" — false, as the relation is strict
    scene = _scene_with(world, 2)
    a, b = scene.objects
    rel = relation_word(a, b)
    assert not relation_holds(rel, b, a)
    first = " ".join(w.text for w in scene.caption_tokens if w.ref == 1 and w.role != "relation")
    assert order_swap(scene.caption_tokens, scene.objects, rng).startswith(first + " " + rel)
    one = _scene_with(world, 1)
    assert order_swap(one.caption_tokens, one.objects, rng) is None


def test_hard_negatives_give_at_most_one_of_each_kind_all_false_none_held_out():
    world = ShapesWorld(seed=0, split="train", holdout="default")
    rng = np.random.default_rng(1)
    seen_kinds = set()
    for scene in world.scenes(60, 0):
        negatives = world.hard_negatives(scene, rng)
        kinds = [k for k, _ in negatives]
        assert len(kinds) == len(set(kinds)) and set(kinds) <= {*FOIL_KINDS, "order"}
        seen_kinds |= set(kinds)
        for kind, text in negatives:
            assert text != scene.caption and not {"pink", "hexagon"} & set(text.split())
            if kind != "order":
                assert sum(a != b for a, b in zip(text.split(), scene.caption.split())) == 1
    assert seen_kinds == {*FOIL_KINDS, "order"}


def test_size_and_cell_targets_say_how_large_and_where_the_object_is():
    world = ShapesWorld(seed=0, split="train", min_objects=1, max_objects=1)
    scene = world.scene(3)
    obj = scene.objects[0]
    t = patch_targets(scene)
    on = t["shape"] > 0
    assert on.any() and set(t) == set(ALL_TARGETS)
    assert set(t["size"][on]) == {1 + ("small", "large").index(obj.size)} and set(t["size"][~on]) == {0}
    col, row = min(2, int(3 * obj.center[0] / scene.size)), min(2, int(3 * obj.center[1] / scene.size))
    assert set(t["cell"][on]) == {1 + row * 3 + col}
    o = object_targets([scene])
    assert o["cell"][0, 0] == 1 + row * 3 + col and o["cell"][0, 1] == -100


def test_dense_heads_read_only_the_recipes_targets():
    assert sum(DenseHeads(16, (1,)).targets.values()) == sum(TARGET_CLASSES.values())
    assert DenseHeads(16, (1,), tuple(ALL_TARGETS)).heads["1"].out_features == sum(ALL_TARGETS.values())
    with pytest.raises(InputError, match="unknown dense targets"):
        DenseHeads(16, (1,), ("shape", "depth"))


def test_negative_loss_is_each_images_caption_against_all_captions_and_all_negatives():
    recipe = ClipRecipe.v2()
    quick = ClipRecipe.quick()
    for k in ("steps", "batch", "width", "layers", "heads", "dense_layers", "warmup"):
        setattr(recipe, k, getattr(quick, k))
    model, processor = build_clip(recipe)
    data = ClipData(recipe)
    batch = data.batch(0, processor.tokenizer, torch.device("cpu"))
    neg = batch["negatives"]
    b = len(batch["scenes"])
    assert neg["count"] > 0 and neg["target"].shape == (b, b + neg["count"])
    assert neg["target"][:, :b].diagonal().all() and not neg["target"][:, b:].any()
    heads = DenseHeads(recipe.width, recipe.dense_layers, recipe.dense_targets)
    losses = clip_losses(model, heads, batch)
    img = F.normalize(model.visual_projection(model.vision_model(pixel_values=batch["pixel_values"]).pooler_output), dim=-1)
    txt = F.normalize(model.text_projection(model.text_model(input_ids=neg["input_ids"],
                                                             attention_mask=neg["attention_mask"]).pooler_output), dim=-1)
    logits = model.logit_scale.exp().clamp(max=100.0) * img @ txt.t()
    t = neg["target"].float()
    expected = -(F.log_softmax(logits, 1) * t / t.sum(1, keepdim=True)).sum(1).mean()
    assert torch.allclose(losses["negatives"], expected, atol=1e-5)
    assert "negatives" not in clip_losses(model, DenseHeads(recipe.width, recipe.dense_layers),
                                          ClipData(quick).batch(0, processor.tokenizer, torch.device("cpu")))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_v2_quick_run_writes_a_loadable_model_its_recipe_and_loss_curve(tmp_path, precision):
    out, run = tmp_path / "clip", tmp_path / "run"
    assert train.main(["clip", "--recipe", "v2", "--quick", "--precision", precision, "--steps", "2",
                       "--out", str(out), "--run-dir", str(run), "--device", "cpu"]) == 0
    info = json.loads((out / "training.json").read_text())
    assert info["recipe"]["negative_weight"] == 1.0 and info["recipe"]["precision"] == precision
    assert set(info["recipe"]["dense_targets"]) == set(ALL_TARGETS)
    assert "--recipe v2" in info["command"] and f"--precision {precision}" in info["command"]
    curve = runtime.read_losses(run)
    assert curve[0]["step"] == 0 and {"contrastive", "dense", "prompt", "negatives"} <= set(curve[0])
    assert all(np.isfinite(v) for v in curve[0].values())
    assert egokit.load(out, device="cpu").family == "clip"


def test_stage_two_settings_are_refused_for_the_vlm(tmp_path, capsys):
    assert train.main(["vlm", "--quick", "--foil-steps", "2", "--out", str(tmp_path / "v")]) == 2
    assert "settings of the micro CLIP only" in capsys.readouterr().err


def test_card_metrics_include_pair_accuracy_per_foil_kind(tmp_path):
    from egokit.recipes.eval_clip import evaluate_clip

    model, processor = build_clip(ClipRecipe.quick())
    metrics = evaluate_clip(model.eval(), processor, n=20)
    for kind in (*FOIL_KINDS, "order"):
        assert 0.0 <= metrics[f"clip.foil_pair_acc_{kind}"] <= 1.0
    assert metrics["clip.foil_pair_acc"] == pytest.approx(
        np.mean([metrics[f"clip.foil_pair_acc_{k}"] for k in FOIL_KINDS]))
    local = metrics["clip.token_locality_layer2"]
    assert local == pytest.approx(metrics["clip.token_locality_layer2_own"] - metrics["clip.token_locality_layer2_far"])


def test_a_run_stopped_by_its_time_limit_saves_its_state_and_the_same_command_goes_on(tmp_path, capsys):
    out, run = tmp_path / "clip", tmp_path / "run"
    argv = ["clip", "--recipe", "v2", "--quick", "--steps", "3", "--out", str(out), "--run-dir", str(run),
            "--device", "cpu"]
    assert train.main([*argv, "--max-minutes", "1e-9"]) == 3   # stops after its first step
    said = capsys.readouterr().out
    assert "stopped at the time limit after step 1 of 3" in said and str(run) in said
    assert not out.exists() and runtime.load_state(run, torch.device("cpu"))["step"] == 1
    assert train.main(argv) == 0
    assert "resuming micro-clip training at step 1" in capsys.readouterr().out
    assert json.loads((out / "training.json").read_text())["steps"] == 3


def test_pick_negatives_takes_relation_and_order_first_then_others_up_to_the_limit():
    negatives = [("colour", "c"), ("shape", "s"), ("relation", "r"), ("size", "z"), ("order", "o")]
    rng = np.random.default_rng(0)
    picked = [pick_negatives(negatives, 3, rng) for _ in range(30)]
    assert all(p[:2] == ["r", "o"] and len(p) == 3 for p in picked)
    assert {p[2] for p in picked} == {"c", "s", "z"}
    assert pick_negatives([("colour", "c")], 3, rng) == ["c"] and pick_negatives([], 3, rng) == []


def test_the_loss_curve_goes_beside_the_model_and_into_its_card(tmp_path):
    out, run = tmp_path / "clip", tmp_path / "run"
    assert train.main(["clip", "--recipe", "v2", "--quick", "--steps", "2", "--out", str(out), "--run-dir",
                       str(run), "--device", "cpu"]) == 0
    assert runtime.read_losses(out) == runtime.read_losses(run) and runtime.read_losses(out)
    card = (out / "README.md").read_text()
    assert "losses.jsonl" in card and "| step | contrastive | dense | prompt | negatives |" in card
    assert "Recipe v2" in card


def test_locality_probe_reads_labels_from_own_tokens_not_far_ones():
    world = ShapesWorld(seed=0, split="test")
    scenes = list(world.scenes(40, 0))
    one_hot = []
    for s in scenes:   # a perfectly local token: the one-hot colour and shape under its own patch
        t = patch_targets(s)
        one_hot.append(np.concatenate([np.eye(20)[t["color"]], np.eye(20)[t["shape"]]], axis=1))
    probe = locality_probe(np.stack(one_hot).astype(np.float32), scenes)
    assert probe["_own"] > 0.95 and probe["_far"] < 0.6 and probe[""] == pytest.approx(probe["_own"] - probe["_far"])
    noise = np.random.default_rng(0).normal(size=np.stack(one_hot).shape).astype(np.float32)
    assert abs(locality_probe(noise, scenes)[""]) < 0.2          # tokens that say nothing are not local


def test_a_run_from_step_0_starts_a_new_loss_curve(tmp_path):
    out, run = tmp_path / "clip", tmp_path / "run"
    argv = ["clip", "--quick", "--out", str(out), "--run-dir", str(run), "--device", "cpu"]
    assert train.main([*argv, "--steps", "3"]) == 0
    (run / "losses.jsonl").write_text('{"step": 900, "contrastive": 1.0}\n', encoding="utf-8")  # an old run's tail
    assert train.main([*argv, "--steps", "2", "--no-resume"]) == 0
    assert [r["step"] for r in runtime.read_losses(out)] == [0]
