import json

import pytest
import torch

from egokit.errors import MemoryFileError
from egokit.results import META_KEY, load_result, save_result


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


def _header(p) -> tuple[bytearray, int]:
    data = bytearray(p.read_bytes())
    return data, int.from_bytes(data[:8], "little")


def test_a_flipped_tensor_byte_fails_the_checksum(tmp_path):
    p = tmp_path / "r.safetensors"
    save_result(p, "thing", 2, {"a": torch.arange(64.0)}, {"words": ["x"]})
    data, header = _header(p)
    data[8 + header + 17] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(MemoryFileError, match="checksum"):
        load_result(p, "thing", 2)


def test_edited_json_fails_the_checksum(tmp_path):
    p = tmp_path / "r.safetensors"
    save_result(p, "thing", 2, {"a": torch.ones(4)}, {"words": ["cat"]})
    data, header = _header(p)
    data[8: 8 + header] = bytes(data[8: 8 + header]).replace(b"cat", b"dog")
    p.write_bytes(bytes(data))
    with pytest.raises(MemoryFileError, match="checksum"):
        load_result(p, "thing", 2)


def test_a_file_saved_before_results_had_a_checksum_still_loads(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "old.safetensors"
    save_file({"a": torch.ones(3)}, str(p), metadata={META_KEY: json.dumps({"kind": "thing", "version": 2, "w": 1})})
    tensors, meta = load_result(p, "thing", 2)
    assert meta["w"] == 1 and torch.equal(tensors["a"], torch.ones(3))


def test_tensors_sharing_memory_save(tmp_path):
    base = torch.arange(10.0)
    p = save_result(tmp_path / "r.safetensors", "thing", 2, {"a": base, "b": base, "c": base[2:5]}, {})
    tensors, _ = load_result(p, "thing", 2)
    assert torch.equal(tensors["b"], base) and torch.equal(tensors["c"], base[2:5])


@pytest.mark.parametrize("meta", [{"reports": []}, {"reports": {"lorsu": 3}}, {"reports": {}, "curves": []}])
def test_a_lorsu_result_with_edited_json_is_a_clear_error(tmp_path, meta):
    """Edited and re-signed (the checksum matches): fields of the wrong type are still a MemoryFileError."""
    from egokit.methods.lorsu.result import LorsuEvaluation

    p = save_result(tmp_path / "l.safetensors", LorsuEvaluation.FILE_KIND, LorsuEvaluation.FILE_VERSION, {}, meta)
    with pytest.raises(MemoryFileError, match="not a complete"):
        LorsuEvaluation.load(p)
