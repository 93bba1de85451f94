"""The tour report as a person sees it: run the real `egokit tour` once, open index.html in headless
Chromium, and check the picture and the page.

The tour runs every registered section (the real builders, on the micro zoo) in a subprocess, once per
module. The screenshot is kept in pytest's temporary folder (its path is printed; run with `-s` to see
it), and also copied to `$EGOKIT_TOUR_SCREENSHOT` when that is set.

Only the screenshot test needs a browser. Where none is on PATH it is skipped, before the tour runs, with
a one-line hint to install one; the page checks run either way. Set `EGOKIT_REQUIRE_BROWSER=1` (as CI
may) to make a missing browser a failure instead of a skip.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from browsers import REQUIRE_BROWSER
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1200, 4000
PNG_IN_PAGE = '<img src="data:image/png;base64,'
# references to anything outside the page: src/href/srcset/poster/data attributes, CSS url() and @import
EXTERNAL = re.compile(r"""(?:\b(?:src|href|srcset|poster|data|action)\s*=\s*["']?\s*(?:https?:)?//)"""
                      r"""|(?:url\(\s*["']?\s*(?:https?:)?//)|(?:@import\s+["']?(?:url\()?\s*["']?(?:https?:)?//)""",
                      re.I)

pytestmark = pytest.mark.slow


@dataclass
class Report:
    out: Path
    html: str
    returncode: int
    stderr: str


def registered_sections() -> list[str]:
    """The keys of every registered tour section, in the order the tour builds them. Asked in a fresh
    interpreter, as `egokit tour` sees them (other tests edit this process's registry)."""
    code = ("from egokit.commands import discover; from egokit.tour.report import _builders; "
            "print(' '.join(b.key for b in _builders(discover())))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    """Run `egokit tour` once (all registered sections) and read its index.html."""
    out = tmp_path_factory.mktemp("tour") / "report"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-m", "egokit", "tour", "--out", str(out), "--device", "cpu"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    index = out / "index.html"
    assert index.is_file(), f"the tour wrote no report (exit {run.returncode}):\n{run.stderr[-3000:]}"
    return Report(out=out, html=index.read_text(encoding="utf-8"), returncode=run.returncode, stderr=run.stderr)


@pytest.fixture(scope="module")
def screenshot(browser: str, report: Report) -> Path:
    """index.html as headless Chromium draws it (`browser` comes first: no browser, no tour run)."""
    index = report.out / "index.html"
    shot_path = report.out.parent / "tour.png"
    profile = report.out.parent / "browser-profile"  # a throw-away profile: nothing of the user's is touched
    shot = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", f"--screenshot={shot_path}",
                           f"--window-size={WIDTH},{HEIGHT}", index.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert shot.returncode == 0 and shot_path.is_file(), (
        f"{browser} took no screenshot (exit {shot.returncode}):\n{shot.stderr[-3000:]}")
    if os.environ.get("EGOKIT_TOUR_SCREENSHOT"):
        shutil.copyfile(shot_path, os.environ["EGOKIT_TOUR_SCREENSHOT"])
    print(f"\ntour screenshot: {shot_path}")
    return shot_path


def section_html(page: str, key: str) -> str | None:
    m = re.search(rf'<section id="{re.escape(key)}">(.*?)</section>', page, re.S)
    return m.group(1) if m else None


def test_screenshot_is_a_real_picture(screenshot):
    with Image.open(screenshot) as img:
        img.load()
        assert img.format == "PNG"
        assert img.size == (WIDTH, HEIGHT)
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
    grey = pixels.mean(-1)
    assert grey.std() > 10, f"the screenshot is (nearly) blank: pixel standard deviation {grey.std():.2f}"
    assert (grey < 250).mean() > 0.02, "the screenshot is almost all white: the page did not render"
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 64, "the screenshot has hardly any colours"


def test_report_is_self_contained(report):
    found = sorted({m.group(0) for m in EXTERNAL.finditer(report.html)})
    assert not found, f"the report loads things from outside the page: {found}"
    assert "<script" not in report.html.lower()


def test_every_registered_section_is_in_the_report(report):
    keys = registered_sections()
    assert keys, "no tour sections are registered"
    missing = [k for k in keys if section_html(report.html, k) is None]
    assert not missing, f"sections registered but not in the report: {missing}"


def test_every_section_built_with_a_picture(report):
    problems = []
    for key in registered_sections():
        body = section_html(report.html, key) or ""
        if 'class="error"' in body:
            error = re.search(r'<div class="error">(.*?)</div>', body, re.S)
            text = html.unescape(re.sub(r"<[^>]+>", "", error.group(1))) if error else "(no message)"
            problems.append(f"{key}: failed: {' '.join(text.split())[:300]}")
        elif PNG_IN_PAGE not in body:
            problems.append(f"{key}: no inline PNG picture")
    assert not problems, "tour sections without a picture:\n" + "\n".join(problems)
    assert report.returncode == 0, f"egokit tour exited {report.returncode}:\n{report.stderr[-2000:]}"


def test_without_a_browser_the_screenshot_test_is_skipped_with_a_hint():
    """A machine with no browser on PATH: the screenshot test is skipped (not failed), before the tour runs."""
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), REQUIRE_BROWSER: ""}
    test = f"{Path(__file__).resolve()}::test_screenshot_is_a_real_picture"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", test],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 skipped" in r.stdout and "apt-get install chromium" in r.stdout, r.stdout[-3000:]
    assert "tour screenshot:" not in r.stdout
