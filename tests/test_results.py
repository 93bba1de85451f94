import pytest
import torch

from egokit.errors import MemoryFileError
from egokit.results import load_result, save_result


def test_round_trip(tmp_path):
    p = tmp_path / "r.safetensors"
    save_result(p, "thing", 2, {"a": torch.arange(6.0).reshape(2, 3)}, {"words": ["x", "y"]})
    tensors, meta = load_result(p, "thing", 2)
    assert torch.equal(tensors["a"], torch.arange(6.0).reshape(2, 3)) and meta["words"] == ["x", "y"]


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "kind", "version"])
def test_damaged_files_are_clear_errors(tmp_path, damage):
    p = tmp_path / "r.safetensors"
    save_result(p, "thing", 2, {"a": torch.ones(100)}, {})
    if damage == "missing":
        p.unlink()
    elif damage == "truncated":
        p.write_bytes(p.read_bytes()[:-50])
    elif damage == "garbage":
        p.write_bytes(b"\x00" * 64)
    kind, version = ("other", 2) if damage == "kind" else ("thing", 3 if damage == "version" else 2)
    with pytest.raises(MemoryFileError):
        load_result(p, kind, version)
