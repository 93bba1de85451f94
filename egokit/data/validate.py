"""Checking a scene's ground truth against its pixels: `scene_problems(scene)` lists what is wrong.

The checks are written from the definitions, not from the drawing code: an object's visible pixels must
show only its own palette (its colours, the dark shade of its main colour for patterns, its mark colour);
every pixel outside all masks must be background grey; a box must be its mask's bounding box; every
caption word must be in the vocabulary and every attribute word true of the object it refers to (a
colour word must also be seen in that object's pixels); relations must hold by centres. Useful after
changing the generator, or on scenes loaded from elsewhere.
"""

from __future__ import annotations

import numpy as np

from egokit.data.scenes import Scene, SceneObject, mask_box
from egokit.data.vocab import COLOR_RGB, MARK_COLOR_RGB, WORDS

#: The largest channel spread (max − min over R, G, B) of a background pixel.
BACKGROUND_SPREAD = 8
_WORDS = frozenset(WORDS)


def _shade(color: str) -> tuple[int, int, int]:
    from egokit.data.drawing import PATTERN_SHADE

    return tuple(int(v * PATTERN_SHADE) for v in COLOR_RGB[color])  # type: ignore[return-value]


def object_palette(obj: SceneObject) -> set[tuple[int, int, int]]:
    """Every RGB value an object's pixels may have."""
    pal = {COLOR_RGB[c] for c in obj.colors}
    if obj.pattern != "solid":
        pal.add(_shade(obj.color))
    if obj.mark is not None:
        pal.add(MARK_COLOR_RGB[obj.mark_color or "black"])
    return pal


def _pixels(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return image[mask].astype(np.int64)


def _count(pixels: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int(np.all(pixels == np.asarray(rgb), axis=1).sum())


def _object_problems(k: int, obj: SceneObject, image: np.ndarray) -> list[str]:
    out = []
    h, w = image.shape[:2]
    if obj.mask.shape != (h, w) or obj.mask.dtype != bool:
        return [f"object {k}: mask has shape {obj.mask.shape} and dtype {obj.mask.dtype}"]
    if not obj.mask.any():
        return [f"object {k}: empty mask"]
    if tuple(obj.box) != mask_box(obj.mask):
        out.append(f"object {k}: box {obj.box} is not the mask's bounding box {mask_box(obj.mask)}")
    px = _pixels(image, obj.mask)
    palette = object_palette(obj)
    allowed = np.zeros(len(px), dtype=bool)
    for rgb in palette:
        allowed |= np.all(px == np.asarray(rgb), axis=1)
    if not allowed.all():
        bad = {tuple(int(v) for v in p) for p in px[~allowed][:3]}
        out.append(f"object {k}: {int((~allowed).sum())} mask pixels outside its palette, e.g. {sorted(bad)}")
    for c in obj.colors:
        if _count(px, COLOR_RGB[c]) < 0.15 * len(px):
            out.append(f"object {k}: colour {c} covers less than 15% of its visible pixels")
    if obj.mark is not None and _count(px, MARK_COLOR_RGB[obj.mark_color or "black"]) < 5:
        out.append(f"object {k}: its {obj.mark_color} {obj.mark} mark shows fewer than 5 pixels")
    x, y = obj.center
    if not (0 <= x <= w and 0 <= y <= h):
        out.append(f"object {k}: centre {obj.center} outside the image")
    return out


def _background_problems(scene: Scene) -> list[str]:
    covered = np.zeros(scene.image.shape[:2], dtype=bool)
    out = []
    for k, o in enumerate(scene.objects):
        if (covered & o.mask).any():
            out.append(f"object {k}: mask overlaps another object's visible pixels")
        covered |= o.mask
    bg = scene.image[~covered].astype(np.int64)
    if bg.size:
        spread = bg.max(axis=1) - bg.min(axis=1)
        if spread.max() > BACKGROUND_SPREAD:
            out.append(f"{int((spread > BACKGROUND_SPREAD).sum())} pixels outside every mask are not grey "
                       "(an object pixel is missing from its mask?)")
    return out


def _word_true(word: str, role: str, obj: SceneObject, image: np.ndarray) -> bool:
    if role == "colour":
        return word in obj.colors and _count(_pixels(image, obj.mask), COLOR_RGB[word]) > 0
    if role in ("shape", "pattern", "size"):
        return getattr(obj, role) == word
    if role == "mark":
        return word in (obj.mark, obj.mark_color)
    if role == "name":
        return obj.name == word
    return True


def _relation_true(word: str, a: SceneObject, b: SceneObject) -> bool:
    (ax, ay), (bx, by) = a.center, b.center
    return {"left": ax < bx, "right": ax > bx, "above": ay < by, "below": ay > by}.get(word, False)


def _caption_problems(scene: Scene) -> list[str]:
    out = []
    n = len(scene.objects)
    if scene.caption != " ".join(scene.caption_words):
        out.append("caption is not its words joined by spaces")
    unknown = [w for w in scene.caption_words if w not in _WORDS]
    if unknown:
        out.append(f"caption words not in WORDS: {unknown}")
    mentioned = set()
    for pos, t in enumerate(scene.caption_tokens):
        if t.ref is not None and not 0 <= t.ref < n:
            out.append(f"caption word {pos} ({t.text!r}) refers to object {t.ref} of {n}")
            continue
        if t.role == "relation":
            if t.ref2 is None or not 0 <= t.ref2 < n or not _relation_true(t.text, scene.objects[t.ref],
                                                                            scene.objects[t.ref2]):
                out.append(f"relation word {pos} ({t.text!r}) is false by centres")
        elif t.ref is not None:
            mentioned.add(t.ref)
            if not _word_true(t.text, t.role, scene.objects[t.ref], scene.image):
                out.append(f"caption word {pos} ({t.text!r}, {t.role}) is false of object {t.ref}")
    if mentioned != set(range(n)):
        out.append(f"caption mentions objects {sorted(mentioned)} of {n}")
    return out


def _question_problems(scene: Scene) -> list[str]:
    out = []
    for q in scene.questions:
        unknown = [w for w in (*q.question_words, *q.answer_words) if w not in _WORDS]
        if unknown:
            out.append(f"question {q.question!r} uses words not in WORDS: {unknown}")
        if q.question == "how many objects are there ?" and q.answer != str(len(scene.objects)):
            out.append(f"count answer {q.answer} but the scene has {len(scene.objects)} objects")
        if q.kind == "yesno" and q.answer not in ("yes", "no"):
            out.append(f"yes/no question {q.question!r} answered {q.answer!r}")
    return out


def scene_problems(scene: Scene) -> list[str]:
    """Everything wrong with a scene's ground truth (an empty list when it is consistent)."""
    img = scene.image
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        return [f"image has shape {img.shape} and dtype {img.dtype}, expected (H, W, 3) uint8"]
    out: list[str] = []
    for k, obj in enumerate(scene.objects):
        out += _object_problems(k, obj, img)
    out += _background_problems(scene)
    out += _caption_problems(scene)
    out += _question_problems(scene)
    names = {o.name for o in scene.objects if o.name is not None}
    if names != set(scene.contains):
        out.append(f"contains {sorted(scene.contains)} but named objects are {sorted(names)}")
    return out
