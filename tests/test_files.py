import os
import stat
import subprocess
import sys
import threading
import time

import pytest

import egokit.files as files
from egokit.errors import InputError
from egokit.files import atomic_path, file_lock, remove_stale_temps, write_bytes_atomic, write_text_atomic


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


# -- stale temp files, permissions, locks ---------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="process liveness is checked on POSIX")
def test_next_save_removes_the_temp_file_of_a_killed_save(tmp_path):
    p = tmp_path / "bank.bin"
    write_text_atomic(p, "old")
    stale = tmp_path / f".bank.bin.{_dead_pid()}.0123abcd.tmp"
    stale.write_bytes(b"x" * 1000)
    running = tmp_path / f".bank.bin.{os.getppid()}.89abcdef.tmp"  # a live process's save in progress
    running.write_bytes(b"y")
    other = tmp_path / f".bank.bin.old.{_dead_pid()}.0123abcd.tmp"  # another file's temp: not ours
    other.write_bytes(b"z")
    write_text_atomic(p, "new")
    assert p.read_text() == "new"
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(["bank.bin", running.name, other.name])


def test_stale_temps_by_age_where_processes_cannot_be_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_process_alive", lambda pid: None)
    old = tmp_path / ".a.txt.12345.0123abcd.tmp"
    young = tmp_path / ".a.txt.12346.0123abcd.tmp"
    old.write_bytes(b"x")
    young.write_bytes(b"x")
    past = time.time() - 2 * files.STALE_TEMP_SECONDS
    os.utime(old, (past, past))
    assert remove_stale_temps(tmp_path / "a.txt") == [old]
    assert young.exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_replaced_file_keeps_its_permissions_and_a_new_one_gets_the_usual(tmp_path):
    p = tmp_path / "a.txt"
    write_text_atomic(p, "one")
    os.chmod(p, 0o640)
    with atomic_path(p) as tmp:
        tmp.write_text("two")
        os.chmod(tmp, 0o600)  # as safetensors' writer does
    assert p.read_text() == "two" and stat.S_IMODE(p.stat().st_mode) == 0o640
    umask = os.umask(0)
    os.umask(umask)
    q = tmp_path / "b.txt"
    with atomic_path(q) as tmp:
        tmp.write_text("new")
        os.chmod(tmp, 0o600)
    assert stat.S_IMODE(q.stat().st_mode) == 0o666 & ~umask


def _count_with_lock(path, workers: int = 4) -> None:
    path.write_text("0")

    def bump() -> None:
        with file_lock(path):
            n = int(path.read_text())
            time.sleep(0.05)  # without the lock, the others read the same n meanwhile
            write_text_atomic(path, str(n + 1))

    threads = [threading.Thread(target=bump) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_text() == str(workers)
    assert not path.with_name(f".{path.name}.lock").exists()


def test_file_lock_serialises_read_modify_write(tmp_path):
    _count_with_lock(tmp_path / "n.txt")


def test_file_lock_without_fcntl(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "fcntl", None)
    _count_with_lock(tmp_path / "n.txt")


@pytest.mark.parametrize("fallback", [False, True])
def test_file_lock_times_out_with_a_clear_message(tmp_path, monkeypatch, fallback):
    if fallback:
        monkeypatch.setattr(files, "fcntl", None)
    p = tmp_path / "b.bank"
    with file_lock(p), pytest.raises(InputError, match=r"locked by another run \(lock file .*\.b\.bank\.lock\)"):
        with file_lock(p, timeout=0.1, what="memory bank"):
            pass
    assert [f.name for f in tmp_path.iterdir()] == []
