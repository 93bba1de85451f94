"""`python -m egokit.recipes.train clip|vlm --quick` runs end to end in seconds and writes loadable folders,
never into the package unless asked, never over a shipped checkpoint without `--overwrite-shipped`."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

import egokit
import egokit.recipes.train as train
from egokit import cli
from egokit.errors import InputError
from egokit.zoo import ZOO_DIR


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
    vlm_info = json.loads((vlm_dir / "training.json").read_text())
    assert vlm_info["segments"] == [[0, 2]] and vlm_info["clip"] == str(clip_dir)  # the --clip path, as given

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


def _digest(folder):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()}


@pytest.fixture
def shipped_zoo(tmp_path, monkeypatch):
    """A stand-in for `egokit/zoo/` with one shipped checkpoint, so a regression cannot damage the real one."""
    zoo = tmp_path / "zoo"
    (zoo / "micro-clip").mkdir(parents=True)
    (zoo / "micro-clip" / "model.safetensors").write_bytes(b"shipped weights")
    monkeypatch.setattr(train, "ZOO_DIR", zoo)
    return zoo


def test_training_never_writes_into_the_package_by_default(tmp_path, monkeypatch, shipped_zoo):
    """No `--out`: the model goes to `<run-dir>/model` in the working folder, the shipped one is untouched."""
    before = _digest(shipped_zoo / "micro-clip")
    monkeypatch.chdir(tmp_path)
    assert train.main(["clip", "--quick", "--device", "cpu"]) == 0
    assert (tmp_path / "runs" / "micro-clip-quick" / "model" / "model.safetensors").is_file()
    assert _digest(shipped_zoo / "micro-clip") == before and sorted(shipped_zoo.iterdir()) == [shipped_zoo / "micro-clip"]


def test_training_over_a_shipped_checkpoint_needs_the_flag(tmp_path, capsys, shipped_zoo):
    """`--out` at a shipped checkpoint is refused before any work unless `--overwrite-shipped` says so,
    and a `--quick` model never replaces one."""
    shipped = shipped_zoo / "micro-clip"
    before = _digest(shipped)
    run_dir = ["--run-dir", str(tmp_path / "run"), "--device", "cpu"]
    assert train.main(["clip", "--quick", "--out", str(shipped), *run_dir]) == 2
    assert "a --quick model never replaces it" in capsys.readouterr().err
    assert cli.main(["zoo", "train", "clip", "--quick", "--overwrite-shipped", "--out", str(shipped / "."),
                     *run_dir]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("egokit: error: ") and "micro-clip" in last and "never replaces it" in last
    assert not (tmp_path / "run").exists() and _digest(shipped) == before
    with pytest.raises(InputError, match="overwrite the shipped checkpoint micro-clip.*--overwrite-shipped"):
        train.check_out(shipped / "sub")
    train.check_out(shipped, overwrite_shipped=True)  # asked for explicitly: allowed
    train.check_out(shipped_zoo / "micro-new")  # into the package, but over nothing shipped: allowed


def test_the_real_shipped_checkpoints_are_protected():
    for name in ("micro-clip", "micro-vlm", "micro-pixel"):
        with pytest.raises(InputError, match=f"shipped checkpoint {name}"):
            train.check_out(ZOO_DIR / name)
