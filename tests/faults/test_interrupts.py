"""Ctrl-C while a command works: exit code 130, `egokit: interrupted` as the last line of stderr (after any
progress bar, no traceback), and no half-written output — the target is absent or an earlier version is
intact, and no temporary file is left behind.

The subprocess tests send SIGINT once the command's progress bar shows it is at work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from egokit.tour import report

ROOT = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")


def _interrupt(argv: list[str], cwd: Path, working: str, after: float = 2.0, timeout: float = 180.0) -> tuple[int, str]:
    """Run `python -m egokit *argv`, send SIGINT `after` seconds after `working` shows on stderr; return
    (exit code, stderr)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    # SIGINT back to its default in the child, so Python turns it into KeyboardInterrupt as in a terminal
    # (a runner started in the background may pass it on ignored)
    proc = subprocess.Popen([sys.executable, "-m", "egokit", *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read1(4096), b"")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while working not in b"".join(chunks).decode(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the command never showed {working!r}:\n{b''.join(chunks).decode(errors='replace')}")
            time.sleep(0.1)
        time.sleep(after)
        assert proc.poll() is None, "the command ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    return code, b"".join(chunks).decode(errors="replace")


def _check_interrupted(code: int, err: str) -> None:
    assert code == 130, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1] == "egokit: interrupted", err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock")) or p.name.startswith("."))


# ------------------------------------------------------------------------------------------------ the tour


@posix_only
def test_ctrl_c_during_the_tour_leaves_no_report_folder(tmp_path):
    code, err = _interrupt(["tour", "--out", "report", "--device", "cpu"], tmp_path, "section")
    _check_interrupted(code, err)
    assert not (tmp_path / "report").exists()  # created at the start, removed again
    assert _temps(tmp_path) == []


@posix_only
def test_ctrl_c_during_the_tour_keeps_the_earlier_report(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    earlier = {"index.html": b"<p>earlier report</p>\n", "metrics.json": b'{"earlier": true}\n',
               "notes.txt": b"the user's own file\n"}
    for name, data in earlier.items():
        (out / name).write_bytes(data)
    code, err = _interrupt(["tour", "--out", str(out), "--device", "cpu"], tmp_path, "section")
    _check_interrupted(code, err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
    assert _temps(tmp_path) == []


def test_an_interrupt_while_the_page_is_rendered_writes_neither_file(tmp_path, monkeypatch):
    """Before, metrics.json was written before the page was rendered: Ctrl-C in between left a new
    metrics.json beside the earlier index.html. Now both are written only once both are ready."""
    (tmp_path / "index.html").write_text("earlier page")
    (tmp_path / "metrics.json").write_text("earlier metrics")

    def interrupted(*_a: object, **_k: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "SECTIONS", [report.SectionBuilder("one", "One", lambda ctx: report.Section(
        key="one", title="One", summary="s"))])
    monkeypatch.setattr(report, "render_html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.run_tour(tmp_path, device="cpu")
    assert (tmp_path / "metrics.json").read_text() == "earlier metrics"
    assert (tmp_path / "index.html").read_text() == "earlier page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "metrics.json"]


def test_an_interrupted_tour_removes_only_a_folder_it_created(tmp_path, monkeypatch):
    def interrupted(ctx: report.TourContext) -> report.Section:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "SECTIONS", [report.SectionBuilder("one", "One", interrupted)])
    for existed in (False, True):
        out = tmp_path / f"report-{existed}"
        if existed:
            out.mkdir()
        with pytest.raises(KeyboardInterrupt):
            report.run_tour(out, device="cpu")
        assert out.exists() == existed
    monkeypatch.setattr(report, "SECTIONS", [report.SectionBuilder("one", "One", lambda ctx: report.Section(
        key="one", title="One", summary="s"))])
    index = report.run_tour(tmp_path / "report-False", device="cpu")  # and a whole run still writes both
    assert json.loads((index.parent / "metrics.json").read_text())["ok"] is True


# ------------------------------------------------------------------------------------------------ an evaluation


@posix_only
def test_ctrl_c_during_an_evaluation_keeps_its_earlier_outputs(tmp_path):
    """`egokit lorsu eval --out r.safetensors --picture r.png`: interrupted while it trains, the earlier
    result and picture stay as they were."""
    earlier = {"r.safetensors": b"earlier result", "r.png": b"earlier picture"}
    for name, data in earlier.items():
        (tmp_path / name).write_bytes(data)
    code, err = _interrupt(["lorsu", "eval", "--quick", "--device", "cpu", "--out", "r.safetensors",
                            "--picture", "r.png"], tmp_path, "lorsu eval:")
    _check_interrupted(code, err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == earlier
    assert _temps(tmp_path) == []


@posix_only
def test_ctrl_c_during_an_evaluation_writes_no_new_output(tmp_path):
    code, err = _interrupt(["lorsu", "eval", "--quick", "--device", "cpu", "--out", "r.safetensors",
                            "--picture", "r.png"], tmp_path, "lorsu eval:")
    _check_interrupted(code, err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["lorsu", "sa2vp"])
def test_an_interrupt_while_the_picture_is_encoded_keeps_the_earlier_picture(method, tmp_path, monkeypatch):
    """`--picture` is encoded in memory and then written atomically: Ctrl-C while PIL writes leaves the
    earlier picture, never half a PNG (before, `sa2vp eval` let PIL write straight into the file)."""
    import importlib

    from PIL import Image

    import egokit

    class FakeResult:
        def save(self, path: Path) -> Path:
            return path

        def to_image(self) -> Image.Image:
            return Image.new("RGB", (8, 8), "red")

    def half_then_interrupt(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        if isinstance(fp, (str, Path)):
            Path(fp).write_bytes(b"\x89PNG half")
        else:
            fp.write(b"\x89PNG half")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(egokit, "load", lambda *a, **k: None)
    monkeypatch.setattr(importlib.import_module(f"egokit.methods.{method}"), "evaluate", lambda *a, **k: FakeResult())
    monkeypatch.setattr(Image.Image, "save", half_then_interrupt)
    picture = tmp_path / "r.png"
    picture.write_bytes(b"earlier picture")
    command = importlib.import_module(f"egokit.commands.{method}")
    with pytest.raises(KeyboardInterrupt):
        command.run_eval(picture=str(picture), device="cpu")
    assert picture.read_bytes() == b"earlier picture"
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]


def test_a_second_interrupt_while_the_first_is_handled_gives_the_same_one_line(monkeypatch, capsys):
    """A second Ctrl-C (a key held down, a signal delivered twice) during the clean-up after the first: still
    exit 130 and one line, never a traceback or a death by signal; Ctrl-C works again afterwards."""
    import gc
    import signal

    from egokit import cli
    from egokit.commands import tour as tour_command

    def interrupted(args):
        raise KeyboardInterrupt

    calls = []

    def second_interrupt(*a):
        calls.append(signal.getsignal(signal.SIGINT))
        raise KeyboardInterrupt

    monkeypatch.setattr(tour_command, "_run", interrupted)
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["tour"]) == 130  # the first one alone
    assert signal.getsignal(signal.SIGINT) == before
    monkeypatch.setattr(gc, "collect", second_interrupt)
    assert cli.main(["tour"]) == 130  # a second one during the clean-up
    assert calls == [signal.SIG_IGN]  # further Ctrl-C were ignored while the first was handled
    assert signal.getsignal(signal.SIGINT) == before
    assert capsys.readouterr().err.strip().splitlines()[-1] == "egokit: interrupted"
