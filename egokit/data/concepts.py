"""Personal concepts: specific object instances that generic words do not pin down.

A concept is a two-tone object (a main colour on one half, a second colour on the other, split left-right
or top-bottom) of one shape, with a distinctive mark (a small black or white symbol at its centre, at least
5×5 px), and a name token from `NAME_POOL`. Its hard negatives share shape, colours and halves and differ
only in the mark. Each concept also has two *companions*: ordinary objects that appear next to it in its
cluttered reference views, so that a query showing a companion without the concept can fool a memory
that kept the whole reference image.

Identities are enumerated in a fixed order (`identity_key`), shuffled once per seed, and cut into
disjoint blocks for the train (60 %), val (20 %) and test (20 %) splits: a seed's splits never share a
concept. Names are drawn per (seed, split) and may repeat across splits.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from egokit.data.vocab import COLORS, HALVES, MARK_COLORS, MARKS, PATTERNS, SHAPES

#: (shape, color, color2, halves, mark, mark_color) of every possible concept, in a fixed order.
Identity = tuple[str, str, str, str, str, str]

#: Share of the shuffled identities given to each split (train first, then val, then test).
SPLIT_SHARES: dict[str, tuple[float, float]] = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}


@lru_cache(maxsize=1)
def all_identities() -> tuple[Identity, ...]:
    """Every concept identity in a fixed order (its position is the concept's key)."""
    return tuple(
        (shape, c1, c2, halves, mark, mc)
        for shape, c1, c2, halves, mark, mc in itertools.product(SHAPES, COLORS, COLORS, HALVES, MARKS, MARK_COLORS)
        if c1 != c2
    )


@lru_cache(maxsize=1)
def _key_of() -> dict[Identity, int]:
    return {ident: k for k, ident in enumerate(all_identities())}


@dataclass(frozen=True)
class Companion:
    """An ordinary object that keeps a concept company in its cluttered reference views."""

    shape: str
    color: str
    pattern: str

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "color": self.color, "pattern": self.pattern}


@dataclass(frozen=True)
class Concept:
    """A personal concept.

    name:       its name token (from `NAME_POOL`).
    shape:      its shape; color / color2: main colour and second colour (two-tone).
    halves:     "left-right" (main colour on the left half) or "top-bottom" (main colour on top).
    mark, mark_color: the distinctive mark (e.g. "ring", "white"), drawn at the object's centre.
    companions: the ordinary objects shown next to it in cluttered reference views.
    """

    name: str
    shape: str
    color: str
    color2: str
    halves: str
    mark: str
    mark_color: str
    companions: tuple[Companion, ...] = ()

    @property
    def identity(self) -> Identity:
        return (self.shape, self.color, self.color2, self.halves, self.mark, self.mark_color)

    @property
    def key(self) -> int:
        """Position of its identity in `all_identities()`: a stable integer id used to seed its scenes."""
        return identity_key(self.identity)

    @property
    def colors(self) -> tuple[str, str]:
        return (self.color, self.color2)

    def values(self) -> frozenset[str]:
        """Its attribute values (shape, both colours, pattern "solid"), used by holdout rules."""
        return frozenset((self.shape, self.color, self.color2, "solid"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "shape": self.shape, "color": self.color, "color2": self.color2,
            "halves": self.halves, "mark": self.mark, "mark_color": self.mark_color, "key": self.key,
            "companions": [c.to_dict() for c in self.companions],
        }


def identity_key(identity: Identity) -> int:
    """The stable integer id of a concept identity."""
    return _key_of()[tuple(identity)]  # type: ignore[index]


def other_marks(mark: str, mark_color: str) -> list[tuple[str, str]]:
    """Every (mark, mark_color) that differs from the given one: the choices for a hard negative."""
    return [(m, c) for m in MARKS for c in MARK_COLORS if (m, c) != (mark, mark_color)]


def companion_pool() -> list[Companion]:
    """Every ordinary object appearance a companion can have."""
    return [Companion(s, c, p) for s in SHAPES for c in COLORS for p in PATTERNS]
