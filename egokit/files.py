"""Writing files so that nothing is ever half-written: a temporary file in the same folder, then an
atomic rename. A reader sees the old file or the new one, never a torn one.

A replaced file keeps its permissions; a new one gets the usual ones (0666 less the umask), whatever the
writer gave its temporary file. A save that was killed (SIGKILL, power loss) leaves its temporary file
behind; the next save of the same file removes it once the process that wrote it is gone.

`file_lock(path)` serialises read-modify-write cycles on one file across processes (e.g. two
`egokit ego remember` runs adding concepts to one bank): `fcntl.flock` on a lock file beside it where the
system has it, an exclusively created lock file elsewhere.
"""

from __future__ import annotations

import os
import re
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: the exclusive-create fallback below
    fcntl = None  # type: ignore[assignment]

STALE_TEMP_SECONDS = 3600.0  # where a writer's process cannot be checked: a temp file this old is stale
LOCK_TIMEOUT_SECONDS = 120.0


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _process_alive(pid: int) -> bool | None:
    """True / False where it can be told (POSIX), None elsewhere."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would end the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, run by someone else
        return True
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary files that killed saves of `path` left behind: those whose writing process is
    gone (or, where that cannot be checked, older than an hour). Another process's save in progress is
    left alone. Returns the removed paths."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
    removed: list[Path] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        alive = _process_alive(int(match.group(1)))
        try:
            if alive is None:
                alive = time.time() - entry.stat().st_mtime < STALE_TEMP_SECONDS
            if not alive:
                entry.unlink()
                removed.append(entry)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def _default_mode(tmp: Path) -> int:
    """Create `tmp` empty, as `open` would (0666 less the umask), and return that mode."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it is removed.

    Use it with writers that take a file name (e.g. `safetensors.torch.save_file`). The file keeps the
    permissions `path` had (or gets the usual ones when new); stale temporary files of earlier, killed
    saves of `path` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = _temp_name(path)
    try:
        mode = _default_mode(tmp)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            pass
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def file_lock(path: str | Path, timeout: float = LOCK_TIMEOUT_SECONDS, what: str = "file") -> Iterator[None]:
    """Hold an exclusive lock on `path` (through the lock file `.<name>.lock` beside it) for the block.

    Waits up to `timeout` seconds for another holder, then raises `InputError` naming the lock file. The lock
    file is removed on release. With `fcntl` the lock dies with its process; without it (Windows) a lock
    file left by a killed run must be removed by hand, as the message says.
    """
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    deadline = time.monotonic() + timeout
    if fcntl is None:
        with _exclusive_create_lock(lock, deadline, what, path):
            yield
        return
    fd = _flock(lock, deadline, what, path)
    try:
        yield
    finally:
        try:
            lock.unlink(missing_ok=True)  # while still held: a waiter then sees its inode is stale and retries
        finally:
            os.close(fd)  # releases the lock


def _busy(lock: Path, what: str, path: Path, timeout: float, fallback: bool) -> Exception:
    from egokit.errors import InputError

    hint = (f"; if no other run is using it, delete {lock}" if fallback else "")
    return InputError(f"the {what} {path} is locked by another run (lock file {lock}) and was not released within "
                      f"{timeout:.0f} s; wait for that run to finish and try again{hint}")


def _flock(lock: Path, deadline: float, what: str, path: Path) -> int:
    assert fcntl is not None
    timeout = max(deadline - time.monotonic(), 0.0)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            from egokit.errors import InputError

            raise InputError(f"cannot lock the {what} {path}: cannot create {lock} ({e.strerror or e}); "
                             "make the folder writable") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise _busy(lock, what, path, timeout, fallback=False) from None
                    time.sleep(0.02)
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)  # the holder before us removed this lock file: lock the new one


@contextmanager
def _exclusive_create_lock(lock: Path, deadline: float, what: str, path: Path) -> Iterator[None]:
    timeout = max(deadline - time.monotonic(), 0.0)
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise _busy(lock, what, path, timeout, fallback=True) from None
            time.sleep(0.02)
        except OSError as e:
            from egokit.errors import InputError

            raise InputError(f"cannot lock the {what} {path}: cannot create {lock} ({e.strerror or e}); "
                             "make the folder writable") from None
    try:
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def make_folder(path: str | Path, what: str, option: str = "--out") -> Path:
    """Create the folder `path` (and its parents) if needed; a clear `InputError` naming `what` ("the report
    folder") and `option` when it is a file or cannot be created."""
    from egokit.errors import InputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} exists and is not a folder; pass {option} with a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {what} {path}: {e.strerror or e}; pass another {option}") from None
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))
