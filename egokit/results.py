"""Saving and loading results: one `.safetensors` file holding the tensors, with the rest as JSON in its
metadata. No pickle anywhere; writes are atomic; anything damaged, truncated, foreign or of another format
version is a `MemoryFileError` that says what to do, never a crash or silent garbage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from egokit.errors import MemoryFileError
from egokit.files import write_bytes_atomic

META_KEY = "egokit"


def save_result(path: str | os.PathLike[str], kind: str, version: int, tensors: dict[str, torch.Tensor],
                meta: dict[str, Any]) -> Path:
    """Write `tensors` and JSON-able `meta` to one safetensors file at `path`, atomically."""
    from safetensors.torch import save

    document = {"kind": kind, "version": version, **meta}
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                metadata={META_KEY: json.dumps(document)})
    return write_bytes_atomic(path, data)


def load_result(path: str | os.PathLike[str], kind: str, version: int,
                what: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by `save_result`; check it is a `kind` file of format `version`.

    `what` names the kind in messages ("LoRSU evaluation"); by default the kind with spaces.
    Returns (tensors, meta). Raises `MemoryFileError` naming the problem for a missing, unreadable,
    truncated or tampered file, a file of another kind, or another format version.
    """
    from safetensors import safe_open

    path = Path(path)
    what = what or kind.replace("_", " ")
    if not path.is_file():
        raise MemoryFileError(f"{path} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get(META_KEY, "null"))
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:  # noqa: BLE001 - any decoding failure means a damaged file
        raise MemoryFileError(f"{path} is not a readable {what} file ({type(e).__name__}: {e}); re-create it") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        found = meta.get("kind") if isinstance(meta, dict) else None
        raise MemoryFileError(f"{path} is not a {what} file" + (f" (it holds a {found})" if found else ""))
    if meta.get("version") != version:
        raise MemoryFileError(f"{path} has format version {meta.get('version')}; this kit reads version {version}")
    return tensors, meta
