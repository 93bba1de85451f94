"""The README cannot rot: every command and code block in it runs, unless it is marked as not runnable here.

A block preceded by `<!-- docs: skip (reason) -->` is skipped for that reason; the test command is the one
that runs this check (CI runs it), so it is not run again from here.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>bash|python)\n(?P<body>.*?)\n```", re.S)


def blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        before = m.group("before").strip()
        if before.startswith("<!-- docs: skip"):
            continue
        if before == "<!-- test-command:start -->":
            continue  # this is the command that runs this test
        found.append(pytest.param(m.group("lang"), m.group("body"), id=f"{m.group('lang')}@{m.start()}"))
    return found


def test_readme_has_the_two_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- main-command:start -->" in text and "<!-- test-command:start -->" in text
    assert re.search(r"<!-- docs: skip \(.+\) -->", text), "skipped blocks must say why"


@pytest.mark.parametrize("lang,body", blocks())
def test_readme_block_runs(lang, body, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    if lang == "python":
        cmd = [sys.executable, "-c", body]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", body]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"README block failed:\n{body}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    if "egokit tour" in body:
        index = ROOT / "egokit-report" / "index.html"
        assert "report written to" in r.stdout and index.exists()
        html = index.read_text(encoding="utf-8")
        assert html.count("data:image/png;base64,") >= 1
        # The first screen is the headline table: one row per method, before any section or metric table.
        headline = json.loads((ROOT / "egokit-report" / "metrics.json").read_text())["headline"]
        assert [row["method"] for row in headline] == ["Ego", "CLIP4DM", "LoRSU", "PixelLLM", "SA²VP"]
        assert html.index('id="headline"') < html.index("<section") < html.index('id="metrics"')
        # the full tour's own run prints nothing from transformers: no deprecation warnings, no loading bars
        assert "FutureWarning" not in r.stderr and "Loading weights" not in r.stderr
