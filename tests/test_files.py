import pytest

from egokit.files import atomic_path, write_bytes_atomic, write_text_atomic


def test_writes_and_replaces(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    write_text_atomic(p, "one")
    write_text_atomic(p, "two")
    assert p.read_text() == "two"
    write_bytes_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert [f.name for f in p.parent.iterdir()] == ["a.txt"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "bank.json"
    write_text_atomic(p, "old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["bank.json"]
