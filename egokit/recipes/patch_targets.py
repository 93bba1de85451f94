"""Per-patch attribute targets of a ShapesWorld scene, for the zoo's dense auxiliary loss and the
locality probe.

For every patch of the grid (raster order) a scene gives four class labels:

- `shape`:   0 background, 1 + index in `SHAPES` of the object covering most of the patch;
- `color`:   0 background, 1 + index in `COLORS` of the colour of most of that object's pixels in the
             patch (for a two-tone object, the half the patch mostly shows);
- `pattern`: 0 background, 1 + index in `PATTERNS`, or `len(PATTERNS) + 1` for a two-tone object;
- `mark`:    0 none, 1 + index in `MARK_KINDS` when at least `MARK_MIN_PIXELS` pixels of a concept's
             mark square lie in the patch.

The object of a patch is `Scene.patch_labels()`'s plurality vote (background wins over a sliver of
object). These targets are ground truth from the generator, used only as training signals and probes.
"""

from __future__ import annotations

import numpy as np

from egokit.data.drawing import mark_offset, mark_side
from egokit.data.scenes import Scene
from egokit.data.vocab import COLORS, MARK_COLORS, MARKS, PATTERNS, SHAPES

#: (mark, mark_color) classes of the `mark` target (after 0 = no mark).
MARK_KINDS: tuple[tuple[str, str], ...] = tuple((m, c) for m in MARKS for c in MARK_COLORS)
MARK_MIN_PIXELS = 4

#: Number of classes of each target (background / none included).
TARGET_CLASSES: dict[str, int] = {
    "shape": 1 + len(SHAPES),
    "color": 1 + len(COLORS),
    "pattern": 2 + len(PATTERNS),
    "mark": 1 + len(MARK_KINDS),
}


def _second_half(obj, size: int) -> np.ndarray:
    """(size, size) bool: the pixels of the drawing square in a two-tone object's second-colour half."""
    out = np.zeros((size, size), dtype=bool)
    x0 = int(round(obj.center[0] - obj.extent / 2.0))
    y0 = int(round(obj.center[1] - obj.extent / 2.0))
    half = obj.extent // 2
    if obj.halves == "top-bottom":
        out[max(0, y0 + half):max(0, y0 + obj.extent), max(0, x0):max(0, x0 + obj.extent)] = True
    else:
        out[max(0, y0):max(0, y0 + obj.extent), max(0, x0 + half):max(0, x0 + obj.extent)] = True
    return out


def _mark_square(obj, size: int) -> np.ndarray:
    out = np.zeros((size, size), dtype=bool)
    if obj.mark is None:
        return out
    m = mark_side(obj.extent)
    mx, my = mark_offset(obj.shape, obj.extent)
    x0 = int(round(obj.center[0] - obj.extent / 2.0)) + mx
    y0 = int(round(obj.center[1] - obj.extent / 2.0)) + my
    out[max(0, y0):max(0, y0 + m), max(0, x0):max(0, x0 + m)] = True
    return out


def patch_targets(scene: Scene, patch: int | None = None) -> dict[str, np.ndarray]:
    """The four per-patch targets of a scene (module docstring), each an int64 array of rows*cols."""
    p = scene.patch if patch is None else int(patch)
    size = scene.size
    rows = cols = size // p
    labels, _ = scene.patch_labels(p)
    labels = labels.ravel()
    n = rows * cols
    out = {k: np.zeros(n, dtype=np.int64) for k in TARGET_CLASSES}
    for k, obj in enumerate(scene.objects):
        where = labels == k
        if obj.mark is not None:
            mark_px = _mark_square(obj, size).reshape(rows, p, cols, p).sum(axis=(1, 3)).ravel()
            out["mark"][mark_px >= MARK_MIN_PIXELS] = 1 + MARK_KINDS.index((obj.mark, obj.mark_color))
        if not where.any():
            continue
        out["shape"][where] = 1 + SHAPES.index(obj.shape)
        if obj.color2 is None:
            out["color"][where] = 1 + COLORS.index(obj.color)
            out["pattern"][where] = 1 + PATTERNS.index(obj.pattern)
        else:
            second = (obj.mask & _second_half(obj, size)).reshape(rows, p, cols, p).sum(axis=(1, 3)).ravel()
            total = obj.mask.reshape(rows, p, cols, p).sum(axis=(1, 3)).ravel()
            use_second = second * 2 > total
            out["color"][where] = np.where(use_second[where], 1 + COLORS.index(obj.color2),
                                           1 + COLORS.index(obj.color))
            out["pattern"][where] = len(PATTERNS) + 1
    return out


def batch_targets(scenes: list[Scene]) -> dict[str, np.ndarray]:
    """`patch_targets` of several scenes stacked: each an int64 (n_scenes, rows*cols) array."""
    per = [patch_targets(s) for s in scenes]
    return {k: np.stack([t[k] for t in per]) for k in TARGET_CLASSES}


#: Most objects a scene can hold (ShapesWorld draws at most 8).
MAX_OBJECTS = 8


def object_targets(scenes: list[Scene], patch: int | None = None) -> dict[str, np.ndarray]:
    """Object-level targets for pooled patch tokens.

    Returns `weights` (n_scenes, MAX_OBJECTS, rows*cols) float32: each object's share of every patch,
    normalised to sum to 1 over the patches (all zeros for absent objects), and for each of shape, color,
    pattern, mark an int64 (n_scenes, MAX_OBJECTS) label with the classes of `patch_targets` (colour: the
    main colour; -100 where there is no object, so a loss ignores it)."""
    first = scenes[0]
    p = first.patch if patch is None else int(patch)
    n = (first.size // p) ** 2
    weights = np.zeros((len(scenes), MAX_OBJECTS, n), dtype=np.float32)
    labels = {k: np.full((len(scenes), MAX_OBJECTS), -100, dtype=np.int64) for k in TARGET_CLASSES}
    for i, scene in enumerate(scenes):
        _, cover = scene.patch_labels(p)
        for k, obj in enumerate(scene.objects[:MAX_OBJECTS]):
            w = cover[k].ravel()
            if w.sum() <= 0:
                continue
            weights[i, k] = w / w.sum()
            labels["shape"][i, k] = 1 + SHAPES.index(obj.shape)
            labels["color"][i, k] = 1 + COLORS.index(obj.color)
            labels["pattern"][i, k] = (1 + PATTERNS.index(obj.pattern)) if obj.color2 is None else len(PATTERNS) + 1
            labels["mark"][i, k] = 0 if obj.mark is None else 1 + MARK_KINDS.index((obj.mark, obj.mark_color))
    return {"weights": weights, **labels}
