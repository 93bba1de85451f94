"""Fast scalar random draws for the generator's hot path.

`Generator.integers` costs about 2 µs per scalar call; these helpers derive the same kind of draw from
one `Generator.random()` call (about 0.3 µs), and stay deterministic for a given generator state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def randint(rng: np.random.Generator, lo: int, hi: int) -> int:
    """A uniform integer in [lo, hi) (hi exclusive, like `Generator.integers`)."""
    if hi <= lo:
        raise ValueError(f"empty range [{lo}, {hi})")
    return lo + min(int(rng.random() * (hi - lo)), hi - lo - 1)


def pick(rng: np.random.Generator, values: Sequence[T]) -> T:
    """A uniformly chosen element of a non-empty sequence."""
    return values[randint(rng, 0, len(values))]
