"""Token heatmaps: paint one score per visual token onto the pixels that token covers.

Conventions used across the kit:

- ``image_size`` is ``(width, height)``, like PIL's ``Image.size``.
- A box is ``(x0, y0, x1, y1)`` in pixels of the image the model saw, with ``x1``/``y1`` exclusive, so
  the token covers ``array[y0:y1, x0:x1]``.
- Token ``r * cols + c`` of a regular patch grid is the cell in row ``r``, column ``c`` (row-major).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from egokit.errors import InputError

UNSIGNED_CMAP = "inferno"
SIGNED_CMAP = "RdBu_r"


def grid_boxes(rows: int, cols: int, image_size: tuple[int, int]) -> np.ndarray:
    """Return the (rows*cols, 4) int64 boxes of a regular patch grid over an image of `image_size`.

    Cell ``(r, c)`` covers pixel rows ``r*H//rows .. (r+1)*H//rows`` and columns ``c*W//cols ..
    (c+1)*W//cols`` (end exclusive), so the cells tile the image exactly even when ``H`` or ``W`` is
    not divisible by the grid. Boxes are in row-major order.
    """
    width, height = _check_size(image_size)
    if not (_is_int(rows) and _is_int(cols)) or rows <= 0 or cols <= 0:
        raise InputError(f"the grid needs positive integer rows and cols, got {rows!r} × {cols!r}")
    if rows > height or cols > width:
        raise InputError(f"a {rows}×{cols} grid does not fit a {width}×{height} image: some cells would be empty")
    ys = (np.arange(rows + 1, dtype=np.int64) * height) // rows
    xs = (np.arange(cols + 1, dtype=np.int64) * width) // cols
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([xs[c], ys[r], xs[c + 1], ys[r + 1]], axis=1)


def token_heatmap(scores: Any, boxes: Any, image_size: tuple[int, int]) -> np.ndarray:
    """Paint each token's score onto its pixel box; return an (H, W) float64 map.

    Where boxes overlap, the pixel gets the mean of the scores covering it; where no token covers a
    pixel the map is NaN. Boxes are clipped to the image; tokens with a NaN score are skipped.
    """
    width, height = _check_size(image_size)
    values, box_arr = _check_scores_and_boxes(scores, boxes)
    total = np.zeros((height, width), dtype=np.float64)
    count = np.zeros((height, width), dtype=np.int64)
    for value, (x0, y0, x1, y1) in zip(values, box_arr):
        if np.isnan(value):
            continue
        x0, x1 = max(int(x0), 0), min(int(x1), width)
        y0, y1 = max(int(y0), 0), min(int(y1), height)
        if x1 <= x0 or y1 <= y0:
            continue
        total[y0:y1, x0:x1] += value
        count[y0:y1, x0:x1] += 1
    heat = np.full((height, width), np.nan, dtype=np.float64)
    covered = count > 0
    heat[covered] = total[covered] / count[covered]
    return heat


def overlay_heatmap(
    image: Any,
    scores: Any,
    boxes: Any,
    alpha: float = 0.5,
    cmap: str | None = None,
    signed: bool = False,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Image.Image:
    """Return an RGB picture of `image` with the token heatmap laid over it.

    Unsigned (default, colour map ``inferno``): scores are scaled to [0, 1] between `vmin` and `vmax`
    (default: the smallest and largest score). Signed (``signed=True``, for gradient×attention; colour
    map ``RdBu_r``): the map is centred at 0 and scaled by `vmax` (default: the largest absolute score),
    blue below zero and red above. In both cases a pixel's opacity is ``alpha`` times its strength, so
    low scores leave the image visible and the strongest tokens are painted at opacity `alpha`. Pixels
    no token covers are left unchanged. `image` is anything `load_image` accepts.
    """
    from egokit.data.images import load_image

    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be between 0 and 1, got {alpha!r}")
    base = load_image(image)
    heat = token_heatmap(scores, boxes, base.size)
    colour_pos, strength = _signed_strength(heat, vmax) if signed else _unsigned_strength(heat, vmin, vmax)
    colours = _colormap(cmap or (SIGNED_CMAP if signed else UNSIGNED_CMAP))(colour_pos)[..., :3]
    weight = (float(alpha) * strength)[..., None]
    pixels = np.asarray(base, dtype=np.float64) / 255.0
    blended = pixels * (1.0 - weight) + colours * weight
    return Image.fromarray(np.round(blended * 255.0).astype(np.uint8), mode="RGB")


# ------------------------------------------------------------------------------------------- helpers


def _unsigned_strength(heat: np.ndarray, vmin: float | None, vmax: float | None) -> tuple[np.ndarray, np.ndarray]:
    finite = heat[np.isfinite(heat)]
    lo = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    span = hi - lo
    pos = np.clip((heat - lo) / span, 0.0, 1.0) if span > 0 else np.zeros_like(heat)
    pos = np.nan_to_num(pos, nan=0.0)
    return pos, pos


def _signed_strength(heat: np.ndarray, vmax: float | None) -> tuple[np.ndarray, np.ndarray]:
    finite = heat[np.isfinite(heat)]
    scale = float(vmax) if vmax is not None else (float(np.abs(finite).max()) if finite.size else 0.0)
    rel = np.clip(heat / scale, -1.0, 1.0) if scale > 0 else np.zeros_like(heat)
    rel = np.nan_to_num(rel, nan=0.0)
    return 0.5 + 0.5 * rel, np.abs(rel)


def _colormap(name: str) -> Any:
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise InputError(f"unknown colour map {name!r}; use a matplotlib name such as 'inferno', "
                         "'viridis' or (signed) 'RdBu_r'") from None


def _check_size(image_size: Sequence[int]) -> tuple[int, int]:
    try:
        width, height = image_size
    except (TypeError, ValueError):
        raise InputError(f"image_size must be (width, height), got {image_size!r}") from None
    if not (_is_int(width) and _is_int(height)) or width <= 0 or height <= 0:
        raise InputError(f"image_size must be two positive integers (width, height), got {image_size!r}")
    return int(width), int(height)


def _check_scores_and_boxes(scores: Any, boxes: Any) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(_to_numpy(scores), dtype=np.float64).reshape(-1)
    box_arr = np.asarray(_to_numpy(boxes), dtype=np.float64)
    if box_arr.ndim != 2 or box_arr.shape[1] != 4:
        raise InputError(f"boxes must have shape (N, 4) as (x0, y0, x1, y1), got {box_arr.shape}")
    if len(values) != len(box_arr):
        raise InputError(f"{len(values)} scores but {len(box_arr)} boxes: pass one score per token box")
    if np.isinf(values).any():
        raise InputError("scores contain infinity; pass finite scores (NaN marks a token to skip)")
    if not np.isfinite(box_arr).all():
        raise InputError("boxes contain NaN or infinity")
    return values, np.rint(box_arr).astype(np.int64)


def _to_numpy(x: Any) -> Any:
    """Accept torch tensors (on any device, with grad) without importing torch."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().float().cpu().numpy()
    return x


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)
