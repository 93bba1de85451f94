"""Every workshop notebook is committed with its outputs and starts with the model cell a participant edits
(the suite also runs notebooks/ under nbval, which checks each one runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))
MODELS = {"02": "micro-clip", "03": "micro-clip", "05": "micro-clip", "00": "micro-vlm", "01": "micro-vlm", "04": "micro-vlm"}


def test_the_clip_notebooks_are_there():
    assert {"02", "03", "05"} <= {nb.name[:2] for nb in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code), f"run {path.name} and commit it executed"
    assert sum(bool(c.get("outputs")) for c in code) >= len(code) // 2, f"{path.name} is saved without its outputs"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in MODELS], ids=lambda p: p.name)
def test_notebook_starts_with_the_model_cell(path: Path) -> None:
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert f'MODEL = "{MODELS[path.name[:2]]}"' in [line.split("#")[0].strip() for line in first["source"]]
