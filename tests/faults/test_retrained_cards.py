"""Training into a folder that holds a model card — a copy of a shipped checkpoint, or a shipped checkpoint
itself with `--overwrite-shipped` — rewrites the card (`README.md`) for the model it wrote: its command and
training run, no metrics of the model it replaced, and how to measure the new one's.

Every run here writes into a copy in a temporary folder; the package's own zoo is checked untouched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import egokit.recipes.train as train
from egokit import cli
from egokit.zoo import ZOO_DIR


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def real_zoo():
    before = _digest(ZOO_DIR)
    yield
    assert _digest(ZOO_DIR) == before, "a test wrote into the package's zoo"


def _old_metric_rows(card: str) -> list[str]:
    return [line for line in card.splitlines() if line.startswith("| `")]


@pytest.mark.parametrize("kind", ["clip", "pixel"])
def test_a_quick_run_into_a_copied_checkpoint_rewrites_its_card(kind, tmp_path, real_zoo):
    folder = tmp_path / f"micro-{kind}"
    shutil.copytree(ZOO_DIR / f"micro-{kind}", folder)
    old = (folder / "README.md").read_text()
    assert _old_metric_rows(old)  # the shipped card has the shipped model's numbers
    assert train.main([kind, "--quick", "--out", str(folder), "--run-dir", str(tmp_path / "run"),
                       "--device", "cpu"]) == 0
    card = (folder / "README.md").read_text()
    assert card != old
    assert f"`python -m egokit.recipes.train {kind} --seed 0 --quick --steps 3`" in card
    assert "- steps: 3;" in card
    assert _old_metric_rows(card) == [] and "Not measured yet" in card
    assert json.loads((folder / "training.json").read_text())["command"] == (
        f"python -m egokit.recipes.train {kind} --seed 0 --quick")

    if kind == "clip":  # measured later (`egokit zoo eval --write-cards`): the same command, now with numbers
        from egokit.recipes.cards import write_card

        card = write_card(folder, "clip", {"clip.zero_shot_acc": 0.25, "eval.seed": 0, "eval.n_clip": 4}).read_text()
        assert "`python -m egokit.recipes.train clip --seed 0 --quick --steps 3`" in card
        assert _old_metric_rows(card) == ["| `clip.zero_shot_acc` | 0.250 |"] and "Not measured yet" not in card


def test_overwrite_shipped_rewrites_the_shipped_card(tmp_path, monkeypatch, real_zoo):
    """`egokit zoo train clip --overwrite-shipped --out <zoo>/micro-clip` (the zoo here a copy): the card of
    the shipped model is replaced by the new model's. The full recipe is swapped for the quick one to keep
    the test short; the card follows the run as it was asked for (no `--quick`)."""
    from egokit.recipes.clip import ClipRecipe, train_clip

    zoo = tmp_path / "zoo"
    shutil.copytree(ZOO_DIR / "micro-clip", zoo / "micro-clip")
    monkeypatch.setattr(train, "ZOO_DIR", zoo)
    monkeypatch.setattr(train, "_train", lambda name, args, out, run_dir: train_clip(
        ClipRecipe.quick(args.seed), out, run_dir, device="cpu", resume=False))
    shipped = zoo / "micro-clip"
    old = (shipped / "README.md").read_text()
    assert cli.main(["zoo", "train", "clip", "--overwrite-shipped", "--seed", "5", "--out", str(shipped),
                     "--run-dir", str(tmp_path / "run"), "--device", "cpu"]) == 0
    card = (shipped / "README.md").read_text()
    assert card != old and _old_metric_rows(card) == []
    assert "`python -m egokit.recipes.train clip --seed 5 --steps 3`" in card
    assert "seed: 5;" in card
    # a shipped folder is named by its zoo name in the command that measures it
    monkeypatch.setattr("egokit.recipes.cards.ZOO_DIR", zoo)
    from egokit.recipes.cards import write_card

    assert "`egokit zoo eval --only clip --clip micro-clip --write-cards`" in write_card(shipped, "clip", {}).read_text()
