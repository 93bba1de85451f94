"""Stage two of the micro-CLIP recipe: tuning on foils (`egokit.recipes.clip_foils`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import egokit.training as runtime
from egokit.errors import InputError
from egokit.recipes.clip import FOIL_KEYS, ClipData, ClipRecipe, _jsonable, build_clip
from egokit.recipes.clip_foils import foil_loss, foil_texts, tune_on_foils


def test_foil_loss_is_cross_entropy_over_each_images_caption_and_its_foils():
    g = torch.Generator().manual_seed(0)
    img, cap = F.normalize(torch.randn(3, 8, generator=g), dim=-1), F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    foils = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    owners, scale = [0, 0, 2], torch.tensor(10.0)   # image 1 has no foil: it takes no part
    expected = []
    for i, own in ((0, [0, 1]), (2, [2])):
        logits = scale * torch.stack([img[i] @ cap[i], *[img[i] @ foils[j] for j in own]])
        expected.append(-F.log_softmax(logits, 0)[0])
    assert torch.allclose(foil_loss(img, cap, foils, owners, scale), torch.stack(expected).mean(), atol=1e-6)


def test_foils_of_the_train_split_are_false_and_never_name_a_held_out_value():
    data = ClipData(ClipRecipe.quick())
    scenes = data.scenes(0, 40)
    texts, owners = foil_texts(data.world, scenes, np.random.default_rng(0), per_image=2)
    assert texts and len(texts) == len(owners) and max(np.bincount(owners)) <= 2
    held_out = {"pink", "hexagon"}
    for text, i in zip(texts, owners):
        assert text != scenes[i].caption and len(text.split()) == len(scenes[i].caption.split())
        assert not held_out & set(text.split())


def test_stage_two_changes_only_the_text_tower_and_resumes_a_stage_one_state(tmp_path):
    recipe = replace(ClipRecipe.quick(), foil_steps=2, batch=6)
    model, processor = build_clip(recipe)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("text_model", "text_projection"))}
    text = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("text_model.encoder")}
    tune_on_foils(model, ClipData(recipe), processor.tokenizer, recipe, torch.device("cpu"))
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())  # vision tower, projections, logit scale
    assert any(not torch.equal(after[k], v) for k, v in text.items())
    assert all(p.requires_grad for p in model.parameters()) and not model.training
    saved = _jsonable(replace(recipe, foil_steps=0))
    assert runtime.same_recipe(saved, _jsonable(recipe), also=FOIL_KEYS)
    assert not runtime.same_recipe(saved, _jsonable(replace(recipe, lr=0.5)), also=FOIL_KEYS)


def test_stage_two_with_vision_from_tunes_only_the_upper_vision_layers():
    recipe = replace(ClipRecipe.quick(), foil_steps=2, batch=6, foil_vision_from=1, foil_lr=1e-2)
    model, processor = build_clip(recipe)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tune_on_foils(model, ClipData(recipe), processor.tokenizer, recipe, torch.device("cpu"))
    after = model.state_dict()
    lower = [k for k in before if k.startswith(("vision_model.embeddings", "vision_model.pre_layrnorm",
                                                 "vision_model.encoder.layers.0."))]
    upper = [k for k in before if k.startswith("vision_model.encoder.layers.1.")]
    assert lower and upper
    assert all(torch.equal(after[k], before[k]) for k in lower)      # what a VLM reading layer 1's output sees
    assert torch.equal(after["logit_scale"], before["logit_scale"])
    assert any(not torch.equal(after[k], before[k]) for k in upper)
    assert not torch.equal(after["visual_projection.weight"], before["visual_projection.weight"])
    with pytest.raises(InputError, match="cannot tune from layer 5"):
        tune_on_foils(model, ClipData(recipe), processor.tokenizer, replace(recipe, foil_vision_from=5),
                           torch.device("cpu"))


def test_train_cli_runs_stage_two_after_a_saved_stage_one(tmp_path, capsys):
    import egokit.recipes.train as train

    common = ["clip", "--quick", "--out", str(tmp_path / "clip"), "--run-dir", str(tmp_path / "run"), "--threads", "1"]
    assert train.main(common) == 0
    first = (tmp_path / "clip" / "model.safetensors").read_bytes()
    assert train.main([*common, "--foil-steps", "2"]) == 0           # resumes stage one, runs stage two
    assert "resuming micro-clip training" in capsys.readouterr().out
    assert (tmp_path / "clip" / "model.safetensors").read_bytes() != first
    assert train.main(["vlm", "--quick", "--foil-steps", "2", "--out", str(tmp_path / "v")]) == 2
    assert "micro CLIP only" in capsys.readouterr().err
    # stage-two mistakes are one-line errors before any training (nothing written)
    assert train.main([*common, "--foil-vision-from", "1"]) == 2
    assert "give --foil-steps" in capsys.readouterr().err
    bad = ["clip", "--quick", "--out", str(tmp_path / "bad"), "--run-dir", str(tmp_path / "run-bad"),
           "--threads", "1", "--foil-steps", "2", "--foil-vision-from", "7"]
    assert train.main(bad) == 2
    assert "cannot tune from layer 7" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and not (tmp_path / "run-bad").exists()
