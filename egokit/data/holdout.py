"""Held-out attribute values and combinations: what the train split never shows.

A `Holdout` lists single values (a colour, shape, pattern or size) and combinations of values (e.g.
("purple", "triangle"): a purple triangle, while purple objects and triangles stay allowed). An object
is held out when it shows any held value, or all the values of any held combination. In the train split
ShapesWorld never draws a held-out object (nor a foil word that would describe one); val and test draw
freely, and `ShapesWorld.scene_with(...)` draws scenes that do contain a held-out value (e.g. the target
data of a continual-learning session).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from egokit.data.vocab import ATTRIBUTE_OF_VALUE, COLORS, PATTERNS, SHAPES, SIZES
from egokit.errors import InputError


@dataclass(frozen=True)
class Holdout:
    """Values and combinations of values that the train split never draws."""

    colors: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    combos: tuple[tuple[str, ...], ...] = ()

    @property
    def values(self) -> frozenset[str]:
        """Every single held value."""
        return frozenset((*self.colors, *self.shapes, *self.patterns, *self.sizes))

    def holds_out(self, values: Iterable[str], ignore: Iterable[str] = ()) -> bool:
        """Whether an object with these attribute values is held out.

        `ignore`: values the caller asked for on purpose (`scene_with`); they, and combinations made only
        of them, do not count."""
        vals, ign = frozenset(values), frozenset(ignore)
        if (vals - ign) & self.values:
            return True
        return any(set(c) <= vals and not set(c) <= ign for c in self.combos)

    def to_dict(self) -> dict[str, Any]:
        return {"colors": list(self.colors), "shapes": list(self.shapes), "patterns": list(self.patterns),
                "sizes": list(self.sizes), "combos": [list(c) for c in self.combos]}

    @classmethod
    def parse(cls, spec: Holdout | Mapping[str, Any] | Iterable[Any] | str | None) -> Holdout | None:
        """A `Holdout` from None, a `Holdout`, "default" (`DEFAULT_HOLDOUT`), a mapping
        (`{"colors": [...], "shapes": [...], "patterns": [...], "sizes": [...], "combos": [(...), ...]}`),
        or an iterable of values and tuples of values (`{"pink", ("purple", "triangle")}`)."""
        if spec is None:
            return None
        if isinstance(spec, Holdout):
            h = spec
        elif isinstance(spec, str):
            if spec != "default":
                raise InputError(f"holdout {spec!r} is not understood: pass 'default', a mapping or a list")
            h = DEFAULT_HOLDOUT
        elif isinstance(spec, Mapping):
            h = _from_mapping(spec)
        else:
            h = _from_items(spec)
        _validate(h)
        return h


def _from_mapping(spec: Mapping[str, Any]) -> Holdout:
    keys = {"colors": "colors", "colours": "colors", "shapes": "shapes", "patterns": "patterns",
            "sizes": "sizes", "combos": "combos"}
    kwargs: dict[str, Any] = {}
    for k, v in spec.items():
        if k not in keys:
            raise InputError(f"unknown holdout key {k!r}: use colors, shapes, patterns, sizes or combos")
        if isinstance(v, str):
            v = [v]
        kwargs[keys[k]] = tuple(tuple(c) for c in v) if keys[k] == "combos" else tuple(v)
    return Holdout(**kwargs)


def _from_items(items: Iterable[Any]) -> Holdout:
    groups: dict[str, list[str]] = {"color": [], "shape": [], "pattern": [], "size": []}
    combos: list[tuple[str, ...]] = []
    for item in items:
        if isinstance(item, str):
            attr = ATTRIBUTE_OF_VALUE.get(item)
            if attr is None:
                raise InputError(f"unknown attribute value {item!r} in holdout")
            groups[attr].append(item)
        else:
            combos.append(tuple(item))
    return Holdout(colors=tuple(groups["color"]), shapes=tuple(groups["shape"]),
                   patterns=tuple(groups["pattern"]), sizes=tuple(groups["size"]), combos=tuple(combos))


def _validate(h: Holdout) -> None:
    for name, allowed, given in (("colors", COLORS, h.colors), ("shapes", SHAPES, h.shapes),
                                 ("patterns", PATTERNS, h.patterns), ("sizes", SIZES, h.sizes)):
        unknown = [v for v in given if v not in allowed]
        if unknown:
            raise InputError(f"unknown {name} in holdout: {unknown}; choose from {list(allowed)}")
        if set(allowed) <= set(given):
            raise InputError(f"holdout removes every one of the {name}: leave at least one for training")
    for combo in h.combos:
        unknown = [v for v in combo if v not in ATTRIBUTE_OF_VALUE]
        if unknown or len(combo) < 2:
            raise InputError(f"bad holdout combination {combo!r}: use two or more known attribute values")
        attrs = [ATTRIBUTE_OF_VALUE[v] for v in combo]
        repeated = {a for a in attrs if attrs.count(a) > 1}
        if repeated - {"color"} or attrs.count("color") > 2:
            raise InputError(f"holdout combination {combo!r} names one attribute twice")


#: The documented default: pink objects and hexagons are never seen in training (new values), and
#: neither are purple triangles nor orange striped objects (new combinations of seen values).
DEFAULT_HOLDOUT = Holdout(colors=("pink",), shapes=("hexagon",),
                          combos=(("purple", "triangle"), ("orange", "striped")))
