"""Every personal-concept identity of a ShapesWorld split, for training on more than `NAME_POOL` concepts.

`ShapesWorld.concepts(n)` hands out at most `len(NAME_POOL)` concepts (each with its own name). The zoo
recipes train on the whole train partition of identities instead, and draw names per example, so a
name means nothing until the context binds it. The partition is ShapesWorld's own (train / val / test
identities never overlap for a seed); held-out identities are dropped in a restricted train split.
"""

from __future__ import annotations

from dataclasses import replace

from egokit.data.concepts import Concept, all_identities
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import NAME_POOL


def split_concepts(sw: ShapesWorld, split: str | None = None) -> list[Concept]:
    """Every concept identity of `split` (default: the generator's), in ShapesWorld's hand-out order.

    Names are placeholders (`NAME_POOL` in turn); give each example its own with `renamed`."""
    split = split or sw.split
    # ShapesWorld's partition and companions, as `concepts(n)` uses them (private helpers, same module
    # family; kept behind this one function so a public API can replace them in one place).
    keys = sw._concept_keys(split)
    identities = all_identities()
    out = []
    for k, key in enumerate(keys):
        shape, c1, c2, halves, mark, mc = identities[key]
        companions = sw._companions(key, (shape, c1, c2), split)
        out.append(Concept(NAME_POOL[k % len(NAME_POOL)], shape, c1, c2, halves, mark, mc, companions))
    return out


def renamed(concept: Concept, name: str) -> Concept:
    """The same concept under another name."""
    return replace(concept, name=name)
