"""`python -m egokit.recipes.train clip|vlm --quick` runs end to end in seconds and writes loadable folders."""

from __future__ import annotations

import json

import torch

import egokit
import egokit.recipes.train as train


def test_quick_clip_then_vlm_train_resume_and_load(tmp_path, capsys):
    clip_dir, vlm_dir = tmp_path / "clip", tmp_path / "vlm"
    assert train.main(["clip", "--quick", "--out", str(clip_dir), "--run-dir", str(tmp_path / "run-clip"),
                       "--device", "cpu"]) == 0
    lm = egokit.load(clip_dir, device="cpu")
    assert lm.family == "clip" and lm.dtype == torch.float32
    assert {t.dtype for t in _saved_tensors(clip_dir)} == {torch.float16}
    info = json.loads((clip_dir / "training.json").read_text())
    assert info["steps"] == 3 and info["recipe"]["seed"] == 0

    # a longer run picks up the saved state instead of starting over
    assert train.main(["clip", "--quick", "--steps", "4", "--out", str(clip_dir),
                       "--run-dir", str(tmp_path / "run-clip"), "--device", "cpu"]) == 0
    assert "resuming micro-clip training at step 3" in capsys.readouterr().out

    assert train.main(["vlm", "--quick", "--clip", str(clip_dir), "--out", str(vlm_dir),
                       "--run-dir", str(tmp_path / "run-vlm"), "--device", "cpu"]) == 0
    vlm = egokit.load(vlm_dir, device="cpu")
    assert vlm.family == "llava" and vlm.dtype == torch.float32
    assert vlm.settings_for("ego") == {"prompt_format": "micro"}  # egokit.json beside the weights
    clip_tower = egokit.load(clip_dir, device="cpu").model.vision_model.state_dict()
    vlm_tower = vlm.model.model.vision_tower.state_dict()
    assert all(torch.equal(clip_tower[k], vlm_tower[k]) for k in clip_tower)  # the CLIP's tower, as trained
    assert json.loads((vlm_dir / "training.json").read_text())["segments"] == [[0, 2]]

    # extended twice: the card says how to repeat a run whose schedule changed on resume
    for steps in ("3", "4"):
        assert train.main(["vlm", "--quick", "--steps", steps, "--clip", str(clip_dir), "--out", str(vlm_dir),
                           "--run-dir", str(tmp_path / "run-vlm"), "--device", "cpu"]) == 0
    assert json.loads((vlm_dir / "training.json").read_text())["segments"] == [[0, 2], [2, 3], [3, 4]]
    from egokit.recipes.cards import write_card

    card = write_card(vlm_dir, "vlm", {"vlm.vqa_acc": 0.5}).read_text()
    assert "--steps 2`" in card and "default recipe" not in card and "--steps 4` (resumes at step 3)" in card


def _saved_tensors(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return [f.get_tensor(k) for k in f.keys()]
