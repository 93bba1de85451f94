"""The PixelLLM notebook runs end to end under nbval (outputs are committed; `--nbval-lax` checks it runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "04_pixel_aligned_words.ipynb"
ZOO = ROOT / "egokit" / "zoo"


SHIPPED = (ZOO / "micro-vlm" / "config.json").exists() and (ZOO / "micro-pixel" / "config.json").exists()
needs_zoo = pytest.mark.skipif(not SHIPPED, reason="the notebook needs the shipped micro-vlm and micro-pixel")


@pytest.mark.slow
@needs_zoo
def test_pixel_notebook_runs_under_nbval(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider", str(NOTEBOOK),
         "--rootdir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@needs_zoo
def test_pixel_notebook_is_committed_with_outputs():
    import json

    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("outputs") for c in code), "run the notebook and commit it with its outputs"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
