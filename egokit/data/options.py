"""Parsing and checking the arguments of ShapesWorld (seeds, sizes, splits, `require=`, presence lists).

Every refusal is an `InputError` whose message says what to pass instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from egokit.data.concepts import Concept
from egokit.data.vocab import ATTRIBUTE_OF_VALUE
from egokit.errors import InputError

SPLITS: tuple[str, ...] = ("train", "val", "test")
MIN_SIZE, MAX_SIZE = 48, 1024


def present_concepts(concepts: Sequence[Concept], present: Sequence[str] | Sequence[bool] | None) -> list[Concept]:
    if not concepts:
        raise InputError("pass at least one concept")
    if present is None:
        return list(concepts)
    present = list(present)
    if all(isinstance(p, (bool, np.bool_)) for p in present):
        if len(present) != len(concepts):
            raise InputError(f"present has {len(present)} flags for {len(concepts)} concepts")
        return [c for c, p in zip(concepts, present) if p]
    names = {c.name for c in concepts}
    unknown = [p for p in present if p not in names]
    if unknown:
        raise InputError(f"present names {unknown} are not among the concepts given ({sorted(names)})")
    return [c for c in concepts if c.name in set(present)]


def present_mask(present: Sequence[int] | Sequence[bool] | None, n_frames: int,
                  rng: np.random.Generator) -> list[bool]:
    if present is None:
        length = int(rng.integers(max(1, n_frames // 2), n_frames + 1))
        start = int(rng.integers(0, n_frames - length + 1))
        return [start <= t < start + length for t in range(n_frames)]
    items = list(present)
    if items and all(isinstance(p, (bool, np.bool_)) for p in items):
        if len(items) != n_frames:
            raise InputError(f"present_frames has {len(items)} flags for {n_frames} frames")
        return [bool(p) for p in items]
    bad = [p for p in items if not 0 <= int(p) < n_frames]
    if bad:
        raise InputError(f"present_frames {bad} are outside 0..{n_frames - 1}")
    frames = {int(p) for p in items}
    return [t in frames for t in range(n_frames)]


def parse_require(require: Mapping[str, str] | Iterable[str] | str | None, attrs: Mapping[str, str]) -> dict[str, str]:
    """{"color": "pink", ...} from a mapping, a value, an iterable of values and/or keyword arguments."""
    out: dict[str, str] = {}
    items: list[tuple[str | None, str]] = []
    if isinstance(require, str):
        items.append((None, require))
    elif isinstance(require, Mapping):
        items += list(require.items())
    elif require is not None:
        items += [(None, v) for v in require]
    items += list(attrs.items())
    for key, value in items:
        attr = ATTRIBUTE_OF_VALUE.get(value)
        if attr is None:
            raise InputError(f"unknown attribute value {value!r}: use a shape, colour, pattern or size word")
        if key is not None and key.rstrip("s").replace("colour", "color") != attr:
            raise InputError(f"{value!r} is a {attr}, not a {key}")
        if attr in out and out[attr] != value:
            raise InputError(f"two values required for {attr}: {out[attr]!r} and {value!r}")
        out[attr] = value
    if not out:
        raise InputError("scene_with needs at least one required value, e.g. color='pink'")
    return out


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_index(i: int) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
        raise InputError(f"scene index must be a non-negative integer, got {i!r}")
    return int(i)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return split


def check_size(size: int, patch: int) -> tuple[int, int]:
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"image size must be an integer between {MIN_SIZE} and {MAX_SIZE} pixels, got {size!r}")
    if not isinstance(patch, (int, np.integer)) or patch < 1 or size % patch:
        raise InputError(f"patch {patch!r} must be a positive divisor of the image size {size}")
    return int(size), int(patch)
