"""Every workshop notebook is committed with its outputs and starts with the model cell a participant edits
(the suite also runs notebooks/ under nbval, which checks each one runs)."""

from __future__ import annotations

import json
import re
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
    # The name JupyterLab writes, so opening a notebook does not mark it modified.
    assert nb["metadata"]["kernelspec"]["display_name"] == "Python 3 (ipykernel)"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in MODELS], ids=lambda p: p.name)
def test_notebook_starts_with_the_model_cell(path: Path) -> None:
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert f'MODEL = "{MODELS[path.name[:2]]}"' in [line.split("#")[0].strip() for line in first["source"]]


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SETTINGS = ("MODEL", "DEVICE", "SEED", "THREADS")
TIMINGS = NOTEBOOKS[0].parent / "timings.json"
TARGET_S = 90.0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_settings_cell_comes_first_after_the_title_with_the_same_names(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    assert cells[1]["cell_type"] == "code"
    assigned = {line.split("=")[0].strip() for line in cells[1]["source"] if re.match(r"^[A-Z_]+ *=", line)}
    assert set(SETTINGS) <= assigned, f"{path.name}: the settings cell sets {sorted(assigned)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_without_widget_state_and_every_widget_carries_its_picture(path: Path) -> None:
    nb = json.loads(path.read_text())
    assert "widgets" not in nb["metadata"], "save without widget state (python notebooks/execute.py does)"
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                assert "image/png" in data, f"{path.name} cell {i}: a widget without its picture (a progress bar?)"
            if out.get("output_type") == "stream":
                text = "".join(out["text"])
                assert not re.search(r"\d+%\|", text), f"{path.name} cell {i}: a frozen progress bar"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_notebooks_use_public_names_only(path: Path) -> None:
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert re.findall(r"\._[A-Za-z]\w*", code) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_offline_render_shows_a_picture_for_every_widget(path: Path) -> None:
    """nbconvert's HTML, as GitHub, nbviewer or a participant without a kernel sees the notebook."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert WIDGET_VIEW not in html  # nothing is left for a widget script from the internet to draw
    # every PNG output shows as a picture, except where the output also has HTML (nbconvert prefers it)
    pictures = sum("image/png" in out.get("data", {}) and "text/html" not in out.get("data", {})
                   for c in nb.cells for out in c.get("outputs", []))
    widgets = sum(WIDGET_VIEW in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))
    assert html.count('src="data:image/png;base64,') == pictures
    assert widgets == 0 or pictures >= widgets


def test_every_notebook_was_timed_within_the_target():
    """`python notebooks/execute.py` records each run; the committed outputs come from runs within 90 s."""
    timings = json.loads(TIMINGS.read_text())
    assert set(timings) == {p.name for p in NOTEBOOKS}
    slow = {name: t["seconds"] for name, t in timings.items() if t["seconds"] > TARGET_S}
    assert slow == {}, f"over {TARGET_S:.0f} s: {slow}"
