"""Scoring a generated caption against a ShapesWorld scene's ground truth: its noun phrases, matched one to
one with the scene's objects so as to agree most on size, colours, pattern and shape.

Used by the zoo's evaluation of the micro VLM (`vlm.caption_attr_acc`) and by the methods that report
caption accuracy (PixelLLM's `caption_attr_acc`, Ego's personalized captions).
"""

from __future__ import annotations

import itertools
from typing import Any

from egokit.data.scenes import Scene
from egokit.data.vocab import COLORS, PATTERNS, SHAPES, SIZES


def parse_phrases(caption: str) -> list[dict[str, Any]]:
    """Noun phrases of a generated caption: each {size, colors (set), pattern, shape} (None if absent)."""
    phrases: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for w in caption.split():
        if w in ("a", "an"):
            cur = {"size": None, "colors": set(), "pattern": None, "shape": None}
            phrases.append(cur)
            continue
        if cur is None:
            continue
        if w in SIZES and cur["size"] is None:
            cur["size"] = w
        elif w in COLORS and cur["shape"] is None:
            cur["colors"].add(w)
        elif w in PATTERNS and cur["shape"] is None:
            cur["pattern"] = w
        elif w in SHAPES and cur["shape"] is None:
            cur["shape"] = w
    return [p for p in phrases if p["shape"] is not None or p["colors"]]


def caption_score(caption: str, scene: Scene) -> tuple[int, int, bool]:
    """(correct attributes, total attributes, right number of phrases) of a generated caption."""
    phrases = parse_phrases(caption)
    truth = [{"size": o.size, "colors": set(o.colors), "pattern": o.pattern if o.color2 is None else None,
              "shape": o.shape} for o in scene.objects]

    def agree(p: dict[str, Any], t: dict[str, Any]) -> int:
        return sum(p[k] == t[k] for k in ("size", "colors", "pattern", "shape"))

    best = 0
    k = min(len(phrases), len(truth))
    for chosen in itertools.permutations(range(len(phrases)), k):
        for objs in itertools.combinations(range(len(truth)), k):
            best = max(best, sum(agree(phrases[c], truth[o]) for c, o in zip(chosen, objs)))
    return best, 4 * len(truth), len(phrases) == len(truth)


__all__ = ["caption_score", "parse_phrases"]
