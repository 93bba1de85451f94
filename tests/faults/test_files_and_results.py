"""Saved files under faults (issue 19, items 3.2, 3.3 and 3.8): every result kind and the memory bank refuse a
flipped byte, edited JSON, a truncated file and a renamed pickle with a `MemoryFileError`; a killed save leaves
the old file intact and its temp file is removed by the next save; concurrent bank updates keep every concept."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from egokit.errors import MemoryFileError
from egokit.results import Result, save_result

METHODS = ["ego", "misalign", "lorsu", "pixel", "sa2vp", "explore"]


def _result_types() -> list[type[Result]]:
    for name in METHODS:
        importlib.import_module(f"egokit.methods.{name}")
    found: list[type[Result]] = []
    todo = list(Result.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.FILE_KIND and cls.__module__.startswith("egokit.") and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__name__}")


TYPES = _result_types()


def _saved(cls: type[Result], path: Path) -> Path:
    """A file of `cls`'s kind: a real bank for the bank types, else the kind's header with one tensor."""
    from egokit.methods.ego.memory import MemoryBank

    if cls.FILE_KIND == MemoryBank.FILE_KIND:
        from egokit.methods.ego.memory import ConceptMemory, MemoryView

        view = MemoryView(torch.rand(4), torch.tensor([1]), torch.zeros(4, 4), (2, 2))
        memory = ConceptMemory(name="bix", embeddings=torch.randn(1, 8), views=[view], fingerprint="f" * 16,
                               description="a red circle")
        return memory.save(path)
    return save_result(path, cls.FILE_KIND, cls.FILE_VERSION, {"probe": torch.arange(256.0)},
                       {"note": "a red circle"})


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    if how == "flip_tensor_bytes":
        for i in range(16):
            data[8 + header + 7 + i] ^= 0xFF
    elif how == "edit_json":
        data[8: 8 + header] = bytes(data[8: 8 + header]).replace(b"a red circle", b"a red square")
    elif how == "truncate":
        data = data[: len(data) // 2]
    elif how == "renamed_pickle":
        path.unlink()
        torch.save({"probe": torch.arange(4)}, str(path))
        return
    path.write_bytes(bytes(data))


def test_every_result_kind_is_covered() -> None:
    names = {c.__name__ for c in TYPES}
    assert {"MisalignmentResult", "PixelResult", "LorsuEvaluation", "SA2VPEvalResult", "PromptChangeMaps",
            "MisalignEvaluation", "PixelEvaluation", "EgoEvaluation", "MemoryBank", "Exploration"} <= names


@pytest.mark.parametrize("how", ["flip_tensor_bytes", "edit_json", "truncate", "renamed_pickle"])
@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_damaged_result_files_are_refused(tmp_path: Path, cls: type[Result], how: str) -> None:
    path = _saved(cls, tmp_path / "r.safetensors")
    _damage(path, how)
    with pytest.raises(MemoryFileError) as info:
        cls.load(path)
    if how in ("flip_tensor_bytes", "edit_json"):
        assert "checksum" in str(info.value)
    assert "\n" not in str(info.value).strip()


@pytest.mark.parametrize("cls", [c for c in TYPES if "load" not in vars(c)], ids=lambda c: c.__name__)
@pytest.mark.parametrize("meta", [{}, {"reports": [], "curves": [], "words": 3, "maps": [], "settings": []}])
def test_edited_and_resigned_json_is_a_clear_error(tmp_path: Path, cls: type[Result], meta: dict[str, Any]) -> None:
    """Someone edits a result's JSON and writes a matching checksum: wrong fields still give a MemoryFileError."""
    path = save_result(tmp_path / "r.safetensors", cls.FILE_KIND, cls.FILE_VERSION, {}, meta)
    try:
        cls.load(path)
    except MemoryFileError:
        pass  # anything else (AttributeError, ...) fails the test


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_killed_save_keeps_the_old_file_and_the_next_save_removes_its_temp(tmp_path: Path) -> None:
    target = tmp_path / "b.bank"
    target.write_bytes(b"old")
    script = ("import os, signal, sys\n"
              "from egokit.files import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n"
              "    tmp.write_bytes(b'x' * 1_000_000)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(target)], cwd=Path(__file__).parents[2])
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old"
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1  # what a kill leaves ...

    from egokit.files import write_bytes_atomic

    write_bytes_atomic(target, b"new")  # ... the next save of the same file removes
    assert [p.name for p in tmp_path.iterdir()] == ["b.bank"] and target.read_bytes() == b"new"
