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
