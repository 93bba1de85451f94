"""Saving and loading results: one `.safetensors` file holding the tensors, with the rest as JSON in its
metadata. No pickle anywhere; writes are atomic; anything damaged, truncated, foreign or of another format
version is a `MemoryFileError` that says what to do, never a crash or silent garbage.

Every file carries a SHA-256 digest of its JSON and of every tensor's name, dtype, shape and bytes (the same
digest as Ego's memory banks), checked on load: a flipped byte or an edited document is refused. Files saved
before results carried a digest (no "sha256" in their metadata) still load, with the other checks only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import torch

from egokit.errors import MemoryFileError
from egokit.files import write_bytes_atomic
from egokit.viz.png import ReprPNG

META_KEY = "egokit"
DIGEST_KEY = "sha256"


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def content_digest(text: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a file's JSON `text` and of every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"\n{name}:{str(t.dtype)}:{tuple(t.shape)}\n".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def owned_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` detached, on the CPU and contiguous, each with storage of its own: a tensor sharing memory
    with one before it (a view, or the same tensor under two names, e.g. after `dataclasses.replace`) is
    copied, which safetensors requires."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
            ptr = t.untyped_storage().data_ptr()
        if t.numel():
            seen.add(ptr)
        out[name] = t
    return out


def save_result(path: str | os.PathLike[str], kind: str, version: int, tensors: dict[str, torch.Tensor],
                meta: dict[str, Any]) -> Path:
    """Write `tensors` and JSON-able `meta` to one safetensors file at `path`, atomically, with its digest."""
    from safetensors.torch import save

    document = {"kind": kind, "version": version, **meta}
    text = json.dumps(document)
    tensors = owned_tensors(tensors)
    data = save(tensors, metadata={META_KEY: text, DIGEST_KEY: content_digest(text, tensors)})
    return write_bytes_atomic(path, data)


def load_result(path: str | os.PathLike[str], kind: str, version: int,
                what: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by `save_result`; check its digest and that it is a `kind` file of format `version`.

    `what` names the kind in messages ("LoRSU evaluation"); by default the kind with spaces.
    Returns (tensors, meta). Raises `MemoryFileError` naming the problem for a missing, unreadable,
    truncated or tampered file, a file of another kind, or another format version. A file without a digest
    (saved before results had one) is read with the other checks.
    """
    from safetensors import safe_open

    path = Path(path)
    what = what or kind.replace("_", " ")
    if not path.is_file():
        raise MemoryFileError(f"{path} does not exist or is not a file; pass a file written by .save()")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:  # noqa: BLE001 - any decoding failure means a damaged file
        raise MemoryFileError(f"{path} is not a readable {what} file ({type(e).__name__}: {e}); re-create it") from None
    text = metadata.get(META_KEY)
    digest = metadata.get(DIGEST_KEY)
    if digest is not None and (not isinstance(text, str) or content_digest(text, tensors) != digest):
        raise MemoryFileError(f"{path} does not match its checksum: it was corrupted or edited after it was saved; "
                              f"re-create the {what} or restore the file from a copy")
    try:
        meta = json.loads(text) if isinstance(text, str) else None
    except ValueError as e:
        raise MemoryFileError(f"{path} is not a readable {what} file (its JSON is damaged: {e}); re-create it") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        found = meta.get("kind") if isinstance(meta, dict) else None
        raise MemoryFileError(f"{path} is not a {what} file" + (f" (it holds a {found})" if found else ""))
    if meta.get("version") != version:
        raise MemoryFileError(f"{path} has format version {meta.get('version')}; this kit reads version {version}")
    return tensors, meta


def flat_metrics(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One flat dict of metrics: nested dicts become dotted names ("f1.ego"), lists and tuples a
    comma-separated string, numpy scalars Python numbers."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_metrics(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            out[name] = value.item()
        else:
            out[name] = value
    return out


class Result(ReprPNG):
    """Base of every result the kit returns: JSON (`to_dict`), a picture (`to_image`, hence `_repr_png_`),
    and one safetensors file (`save` / `load`: atomic, versioned, checked, no pickle).

    A subclass sets `FILE_KIND`, `FILE_VERSION` (and `FILE_WHAT`, the name used in messages) and implements
    `to_dict`, `to_image`, `_file_tensors` / `_file_meta` (what is written) and `_from_file` (how it is read
    back). Everything else comes from here.
    """

    FILE_KIND: ClassVar[str] = ""
    FILE_VERSION: ClassVar[int] = 1
    FILE_WHAT: ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _file_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def _file_meta(self) -> dict[str, Any]:
        return self.to_dict()

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Any:
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this result to one `.safetensors` file at `path`, atomically; return the path."""
        return save_result(path, self.FILE_KIND, self.FILE_VERSION, self._file_tensors(), self._file_meta())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """Read a file written by `save`; a damaged, foreign or other-version file is a `MemoryFileError`."""
        tensors, meta = load_result(path, cls.FILE_KIND, cls.FILE_VERSION, cls.FILE_WHAT)
        try:
            return cls._from_file(tensors, meta)
        except MemoryFileError:
            raise
        except Exception as e:  # noqa: BLE001 - a field of the wrong type or shape (edited JSON): the file is bad
            what = cls.FILE_WHAT or cls.FILE_KIND.replace("_", " ")
            raise MemoryFileError(f"{path} is not a complete {what} file ({type(e).__name__}: {e}); "
                                  "re-create it") from None


class Evaluation(Result):
    """A method's evaluation: a `Result` whose `metrics()` is the flat dict `egokit <method> eval --json`
    prints (names → numbers or short strings)."""

    def metrics(self) -> dict[str, Any]:
        raise NotImplementedError


class MetricsEvaluation(Evaluation):
    """An evaluation that is just its metrics (and the settings it ran with): saved as JSON in the file's
    metadata, shown as a table picture."""

    FILE_VERSION: ClassVar[int] = 1

    def __init__(self, metrics: dict[str, Any], settings: dict[str, Any] | None = None) -> None:
        self._metrics = dict(metrics)
        self.settings = dict(settings or {})

    def metrics(self) -> dict[str, Any]:
        return dict(self._metrics)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics(), "settings": dict(self.settings)}

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Any:
        return cls(meta["metrics"], meta.get("settings"))

    def to_image(self) -> Any:
        from egokit.viz.table import metrics_table_picture

        return metrics_table_picture(self.metrics(), title=self.FILE_WHAT or self.FILE_KIND.replace("_", " "))

    def __getitem__(self, key: str) -> Any:
        return self._metrics[key]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._metrics!r})"


__all__ = ["DIGEST_KEY", "META_KEY", "Evaluation", "MetricsEvaluation", "Result", "content_digest", "flat_metrics",
           "load_result", "owned_tensors", "save_result"]
