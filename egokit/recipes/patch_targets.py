"""Per-patch attribute targets of a ShapesWorld scene, for the zoo's dense auxiliary loss and the
locality probe.

For every patch of the grid (raster order) a scene gives four class labels:

- `shape`:   0 background, 1 + index in `SHAPES` of the object covering most of the patch;
- `color`:   0 background, 1 + index in `COLORS` of the colour of most of that object's pixels in the
             patch (for a two-tone object, the half the patch mostly shows);
- `pattern`: 0 background, 1 + index in `PATTERNS`, or `len(PATTERNS) + 1` for a two-tone object;
- `mark`:    0 none, 1 + index in `MARK_KINDS` when at least `MARK_MIN_PIXELS` pixels of a concept's
             mark square lie in the patch.

and two targets of where and how large (`POSITION_TARGETS`, used by the micro CLIP's second recipe):

- `size`:    0 background, 1 + index in `SIZES` of the patch's object;
- `cell`:    0 background, 1 + the cell (row * 3 + column) of a 3×3 grid over the image that holds the
             centre of the patch's object: every patch of an object says where the whole object is.

The object of a patch is `Scene.patch_labels()`'s plurality vote (background wins over a sliver of
object). These targets are ground truth from the generator, used only as training signals and probes.
"""

from __future__ import annotations

import numpy as np

from egokit.data.drawing import mark_offset, mark_side
from egokit.data.scenes import Scene
from egokit.data.vocab import COLORS, MARK_COLORS, MARKS, PATTERNS, SHAPES, SIZES

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
#: The targets of where and how large (module docstring), and every target with its number of classes.
POSITION_TARGETS: dict[str, int] = {"size": 1 + len(SIZES), "cell": 1 + 9}
ALL_TARGETS: dict[str, int] = {**TARGET_CLASSES, **POSITION_TARGETS}


def object_cell(obj, size: int) -> int:
    """The 3×3 grid cell (row * 3 + column) that holds the object's centre, in an image of side `size`."""
    col = min(2, int(3 * obj.center[0] / size))
    row = min(2, int(3 * obj.center[1] / size))
    return row * 3 + col


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
    """Every per-patch target of a scene (module docstring), each an int64 array of rows*cols."""
    p = scene.patch if patch is None else int(patch)
    size = scene.size
    rows = cols = size // p
    labels, _ = scene.patch_labels(p)
    labels = labels.ravel()
    n = rows * cols
    out = {k: np.zeros(n, dtype=np.int64) for k in ALL_TARGETS}
    for k, obj in enumerate(scene.objects):
        where = labels == k
        if obj.mark is not None:
            mark_px = _mark_square(obj, size).reshape(rows, p, cols, p).sum(axis=(1, 3)).ravel()
            out["mark"][mark_px >= MARK_MIN_PIXELS] = 1 + MARK_KINDS.index((obj.mark, obj.mark_color))
        if not where.any():
            continue
        out["shape"][where] = 1 + SHAPES.index(obj.shape)
        out["size"][where] = 1 + SIZES.index(obj.size)
        out["cell"][where] = 1 + object_cell(obj, size)
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
    return {k: np.stack([t[k] for t in per]) for k in ALL_TARGETS}


#: Most objects a scene can hold (ShapesWorld draws at most 8).
MAX_OBJECTS = 8


def object_targets(scenes: list[Scene], patch: int | None = None) -> dict[str, np.ndarray]:
    """Object-level targets for pooled patch tokens.

    Returns `weights` (n_scenes, MAX_OBJECTS, rows*cols) float32: each object's share of every patch,
    normalised to sum to 1 over the patches (all zeros for absent objects), and for each target of
    `ALL_TARGETS` an int64 (n_scenes, MAX_OBJECTS) label with the classes of `patch_targets` (colour: the
    main colour; -100 where there is no object, so a loss ignores it)."""
    first = scenes[0]
    p = first.patch if patch is None else int(patch)
    n = (first.size // p) ** 2
    weights = np.zeros((len(scenes), MAX_OBJECTS, n), dtype=np.float32)
    labels = {k: np.full((len(scenes), MAX_OBJECTS), -100, dtype=np.int64) for k in ALL_TARGETS}
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
            labels["size"][i, k] = 1 + SIZES.index(obj.size)
            labels["cell"][i, k] = 1 + object_cell(obj, scene.size)
    return {"weights": weights, **labels}


# ---------------------------------------------------------------------------------------------- locality


def _ridge_acc(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
               n_classes: int, lam: float = 1.0) -> float:
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    a = np.concatenate([a, np.ones((len(a), 1))], 1)
    b = np.concatenate([b, np.ones((len(b), 1))], 1)
    y = np.eye(n_classes)[y_train]
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y)
    return float(((b @ w).argmax(1) == y_test).mean())


def locality_probe(feats: np.ndarray, scenes: list[Scene]) -> dict[str, float]:
    """How local patch tokens are. `feats` (n_scenes, rows*cols, D): one token per patch, raster order.

    For the object patches of each scene, ridge regression on one-hot labels (fit on the first half of the
    scenes, scored on the other half) reads the colour and the shape of the object under the patch from the
    patch's own token (A_own) and from the token 4 rows and 4 columns away, wrapping around (A_far). Returns
    `{"": A_own - A_far, "_own": A_own, "_far": A_far}` (each the mean of colour and shape)."""
    n, t, _ = feats.shape
    side = int(round(t ** 0.5))
    rr, cc = np.divmod(np.arange(t), side)
    far = ((rr + side // 2) % side) * side + (cc + side // 2) % side
    targets = [patch_targets(s) for s in scenes]
    half = n // 2
    result = {}
    for attr in ("color", "shape"):
        xs_own, xs_far, ys, split = [], [], [], []
        for i in range(n):
            lab = targets[i][attr]
            for j in np.flatnonzero(lab > 0):
                xs_own.append(feats[i, j])
                xs_far.append(feats[i, far[j]])
                ys.append(lab[j] - 1)
                split.append(i < half)
        xo, xf, y, tr = np.array(xs_own), np.array(xs_far), np.array(ys), np.array(split)
        k = len(COLORS) if attr == "color" else len(SHAPES)
        result[f"own_{attr}"] = _ridge_acc(xo[tr], y[tr], xo[~tr], y[~tr], k)
        result[f"far_{attr}"] = _ridge_acc(xf[tr], y[tr], xf[~tr], y[~tr], k)
    own = (result["own_color"] + result["own_shape"]) / 2
    far_acc = (result["far_color"] + result["far_shape"]) / 2
    return {"": own - far_acc, "_own": own, "_far": far_acc}
