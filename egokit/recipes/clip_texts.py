"""The texts the micro CLIP is trained on, its zero-shot prompts, and which texts are true of which images.

A training text is either a scene's full caption (sometimes after CLIP4DM's prefix "a photo depicts") or
a short description of one object from a few templates. The zero-shot prompts are among those templates:

    colour:  "a photo of a {color} object ."
    shape:   "a photo of a {shape} ."
    pattern: "a photo of a {pattern} object ."

A short description is true of every image with an object that has the stated attributes, so a batch's
contrastive targets mark all images it is true of, not just the one it was written for (`match_matrix`).
A full caption counts as true of its own image (and of images whose caption is the same string).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from egokit.data.scenes import Scene, SceneObject

ZERO_SHOT_TEMPLATES: dict[str, str] = {
    "color": "a photo of a {} object .",
    "shape": "a photo of a {} .",
    "pattern": "a photo of a {} object .",
}
CAPTION_PREFIX = "a photo depicts"


@dataclass(frozen=True)
class TrainText:
    """A text and what it claims: `need` maps attributes (color, color2, shape, pattern, size, mark,
    mark_color) to values one object must show; `need=None` means a full caption of image `owner`."""

    text: str
    owner: int
    need: dict[str, str] | None = field(default=None)


def zero_shot_prompts(attribute: str, values: Sequence[str]) -> list[str]:
    """The zero-shot prompt of each value of an attribute (color, shape or pattern)."""
    return [ZERO_SHOT_TEMPLATES[attribute].format(v) for v in values]


def _object_text(obj: SceneObject, rng: np.random.Generator) -> tuple[str, dict[str, str]]:
    """A short description of one object, from a random template."""
    two_tone = obj.color2 is not None
    color = obj.colors[int(rng.integers(len(obj.colors)))]
    options: list[tuple[str, dict[str, str]]] = [
        (f"a photo of a {color} object .", {"color": color}),
        (f"a photo of a {obj.shape} .", {"shape": obj.shape}),
        (f"a {color} {obj.shape} .", {"color": color, "shape": obj.shape}),
        (f"a {obj.size} {color} {obj.shape} .", {"size": obj.size, "color": color, "shape": obj.shape}),
        (f"a photo of a {obj.size} object .", {"size": obj.size}),
    ]
    if not two_tone:
        options += [
            (f"a photo of a {obj.pattern} object .", {"pattern": obj.pattern}),
            (f"a {obj.pattern} {obj.shape} .", {"pattern": obj.pattern, "shape": obj.shape}),
            (f"a {obj.color} {obj.pattern} {obj.shape} .",
             {"color": obj.color, "pattern": obj.pattern, "shape": obj.shape}),
        ]
    else:
        options.append((f"a {obj.color} and {obj.color2} {obj.shape} .",
                        {"color": obj.color, "color2": obj.color2, "shape": obj.shape}))
    if obj.mark is not None:
        options += [
            (f"a {obj.shape} with a {obj.mark_color} {obj.mark} .",
             {"shape": obj.shape, "mark": obj.mark, "mark_color": obj.mark_color}),
            (f"a photo of an object with a {obj.mark_color} {obj.mark} .",
             {"mark": obj.mark, "mark_color": obj.mark_color}),
        ]
    return options[int(rng.integers(len(options)))]


def sample_text(scene: Scene, owner: int, rng: np.random.Generator, p_caption: float = 0.45) -> TrainText:
    """One training text for `scene` (image number `owner` in the batch)."""
    if not scene.objects or rng.random() < p_caption:
        text = scene.caption
        if rng.random() < 0.3:
            text = f"{CAPTION_PREFIX} {text}"
        return TrainText(text, owner)
    obj = scene.objects[int(rng.integers(len(scene.objects)))]
    text, need = _object_text(obj, rng)
    return TrainText(text, owner, need)


def _shows(obj: SceneObject, need: dict[str, str]) -> bool:
    for key, value in need.items():
        if key in ("color", "color2"):
            if value not in obj.colors:
                return False
        elif getattr(obj, key) != value:
            return False
    return True


def match_matrix(scenes: Sequence[Scene], texts: Sequence[TrainText]) -> np.ndarray:
    """(n_images, n_texts) bool: whether text j is true of image i (module docstring)."""
    out = np.zeros((len(scenes), len(texts)), dtype=bool)
    captions = [s.caption for s in scenes]
    for j, t in enumerate(texts):
        if t.need is None:
            body = t.text.removeprefix(CAPTION_PREFIX + " ")
            for i, c in enumerate(captions):
                out[i, j] = c == body
            out[t.owner, j] = True
        else:
            for i, s in enumerate(scenes):
                out[i, j] = any(_shows(o, t.need) for o in s.objects)
    return out
