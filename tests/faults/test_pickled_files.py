"""A pickle renamed to a file the kit reads — a memory bank given with `--bank`, a result file, a point head —
is refused with one line, never unpickled: the pickle below would create a file the moment it is loaded.

(tests/faults/test_files_and_results.py covers a harmless pickle for every result kind; this adds one that
runs code, and the command line.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from egokit import cli
from egokit.errors import MemoryFileError
from egokit.zoo import ZOO_DIR
from tests.faults.test_files_and_results import TYPES


class _RunsCode:
    """Unpickling this creates the file `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle(path: Path, marker: Path) -> bytes:
    torch.save({"probe": torch.arange(4), "payload": _RunsCode(marker)}, str(path))
    return path.read_bytes()


@pytest.fixture
def image(tmp_path) -> str:
    path = tmp_path / "red.png"
    Image.new("RGB", (64, 64), "red").save(path)
    return str(path)


def _one_error_line(err: str) -> str:
    last = err.strip().splitlines()[-1]
    assert last.startswith("egokit: error: "), err
    assert "unexpected error" not in err and "Traceback" not in err
    return last


@pytest.mark.parametrize("action", ["ask", "remember"])
def test_a_pickle_given_as_a_memory_bank_is_refused(action, image, tmp_path, capsys):
    """`ask` reads the bank; `remember` reads it to add a concept: both refuse it and leave it as it was."""
    bank, marker = tmp_path / "x.egomem", tmp_path / "ran"
    before = _pickle(bank, marker)
    head = (["ego", "ask", image, "is bix in this image ?"] if action == "ask"
            else ["ego", "remember", image, "bix", "--keywords", "red circle"])
    assert cli.main([*head, "--bank", str(bank), "--device", "cpu"]) == 2
    last = _one_error_line(capsys.readouterr().err)
    assert str(bank) in last and "memory bank" in last, last
    assert not marker.exists()
    assert bank.read_bytes() == before  # not replaced by a new bank either


def test_a_pickle_given_as_a_point_head_is_refused(image, tmp_path, capsys):
    folder, marker = tmp_path / "head", tmp_path / "ran"
    shutil.copytree(ZOO_DIR / "micro-pixel", folder)
    _pickle(folder / "head.safetensors", marker)
    assert cli.main(["pixel", "refer", image, "the red circle", "--head", str(folder), "--device", "cpu"]) == 2
    last = _one_error_line(capsys.readouterr().err)
    assert str(folder) in last and "point head" in last, last
    assert not marker.exists()


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_a_pickle_that_runs_code_is_refused_as_a_result_file(cls, tmp_path):
    path, marker = tmp_path / "r.safetensors", tmp_path / "ran"
    _pickle(path, marker)
    with pytest.raises(MemoryFileError) as info:
        cls.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value).strip()
    assert not marker.exists()
