import subprocess
import sys

import pytest

from egokit import cli
from egokit.commands import tour as tour_command
from egokit.errors import InputError


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("tour", "data", "bench"):
        assert name in out


def test_egokit_error_is_one_line_and_nonzero(monkeypatch, capsys):
    def boom(args):
        raise InputError("the caption is empty: pass at least one word")

    monkeypatch.setattr(tour_command, "_run", boom)
    assert cli.main(["tour"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "egokit: error: the caption is empty: pass at least one word"


def test_unexpected_error_has_no_traceback(monkeypatch, capsys):
    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(tour_command, "_run", boom)
    assert cli.main(["tour"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--debug" in err and len(err.strip().splitlines()) == 1


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "egokit", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: egokit" in r.stdout


def test_the_libraries_bars_and_warnings_are_hidden_unless_verbose(tmp_path):
    """A command shows the kit's own output only; `--verbose` (before or after the sub-command) adds the
    libraries' loading bars. Run as a person would: a fresh process."""
    import os

    from PIL import Image

    from egokit.models.tiny import build_tiny

    model, processor = build_tiny("llava")
    folder = tmp_path / "tiny-llava"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    image = tmp_path / "red.png"
    Image.new("RGB", (64, 64), "red").save(image)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    base = [sys.executable, "-m", "egokit", "explore", str(image), "what is this ?", "--model", str(folder),
            "--max-new-tokens", "2"]
    quiet = subprocess.run(base, capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "Loading weights" not in quiet.stderr and "Warning" not in quiet.stderr, quiet.stderr[-2000:]
    loud = subprocess.run([*base, "--verbose"], capture_output=True, text=True, env=env, timeout=300)
    assert loud.returncode == 0 and "Loading weights" in loud.stderr, loud.stderr[-2000:]


def test_quiet_libraries_restores_the_state_it_changed():
    import warnings

    from transformers.utils import logging as hf_logging

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), len(warnings.filters))
    with cli._quiet_libraries(verbose=False):
        assert hf_logging.get_verbosity() == hf_logging.ERROR and not hf_logging.is_progress_bar_enabled()
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), len(warnings.filters)) == before
