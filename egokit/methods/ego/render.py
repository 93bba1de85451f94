"""Pictures of Ego's results: a view's token scores with the kept tokens outlined, memories side by side,
and bar charts comparing memory types. Pure renderers (PIL, matplotlib): no model calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from egokit.viz import fonts

KEPT_COLOUR = (0, 220, 255)
MASK_COLOUR = (60, 220, 60)


def selection_picture(image: Any, scores: torch.Tensor | np.ndarray, boxes: Any, selected: Sequence[int],
                      *, target: int = 256, alpha: float = 0.6, show_heat: bool = True,
                      mask: np.ndarray | None = None) -> Image.Image:
    """The image with its token-score heatmap and the kept tokens outlined (upscaled to ~`target` px)."""
    from egokit.viz.heatmap import overlay_heatmap
    from egokit.viz.scene import upscale

    scores = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    box_arr = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float64)
    if show_heat and np.ptp(scores) > 0:
        base = overlay_heatmap(image, scores, box_arr, alpha=alpha)
    else:
        from egokit.data.images import load_image

        base = load_image(image)
    big, factor = upscale(base, target)
    draw = ImageDraw.Draw(big)
    if mask is not None:
        _outline_mask(draw, np.asarray(mask, dtype=bool), factor)
    for j in selected:
        x0, y0, x1, y1 = (int(round(v * factor)) for v in box_arr[int(j)])
        draw.rectangle((x0 + 1, y0 + 1, x1 - 2, y1 - 2), outline=KEPT_COLOUR, width=max(1, factor // 2))
    return big


def _outline_mask(draw: ImageDraw.ImageDraw, mask: np.ndarray, factor: int) -> None:
    h, w = mask.shape
    edge = mask & ~(np.pad(mask, 1)[2:, 1:-1] & np.pad(mask, 1)[:-2, 1:-1] & np.pad(mask, 1)[1:-1, 2:]
                    & np.pad(mask, 1)[1:-1, :-2])
    for y, x in zip(*np.nonzero(edge)):
        draw.rectangle((x * factor, y * factor, (x + 1) * factor - 1, (y + 1) * factor - 1), fill=MASK_COLOUR)


def memory_picture(memory: Any, tile: int = 256) -> Image.Image:
    """Every view of a memory: heatmap of its scores, kept tokens outlined; keywords in the title."""
    from egokit.viz.scene import gallery

    tiles, titles = [], []
    for j, view in enumerate(memory.views):
        if view.image is None:
            continue
        tiles.append(selection_picture(view.image, view.scores, view.boxes, view.selected.tolist(), target=tile))
        what = f"{memory.selection}: {view.selected.numel()}/{view.n_tokens} tokens"
        titles.append(f"{memory.name} view {j}: {what}" + (f" | {' '.join(memory.keywords)}" if j == 0 and
                                                               memory.keywords else ""))
    if not tiles:
        canvas = Image.new("RGB", (tile, 40), "white")
        ImageDraw.Draw(canvas).text((4, 12), f"{memory!r}"[:80], fill=(20, 20, 20), font=fonts.font(12))
        return canvas
    return gallery(tiles, titles, cols=min(4, len(tiles)), tile=tile)


def memories_picture(memories: Sequence[Any], tile: int = 220) -> Image.Image:
    """First view of several memories side by side (e.g. Ego vs uniform vs random vs oracle)."""
    from egokit.viz.scene import gallery

    tiles, titles = [], []
    for m in memories:
        v = m.views[0]
        tiles.append(selection_picture(v.image, v.scores, v.boxes, v.selected.tolist(), target=tile,
                                       show_heat=m.selection in ("ego", "oracle")))
        titles.append(f"{m.selection}: {m.n_tokens} tokens")
    return gallery(tiles, titles, cols=len(tiles), tile=tile)


def bank_picture(bank: Any, tile: int = 220) -> Image.Image:
    """First view of every concept of a bank, kept tokens outlined, titled with the name and token count."""
    from egokit.viz.scene import gallery

    tiles, titles = [], []
    for m in bank:
        v = m.views[0] if m.views else None
        if v is None or v.image is None:
            continue
        tiles.append(selection_picture(v.image, v.scores, v.boxes, v.selected.tolist(), target=tile,
                                       show_heat=m.selection in ("ego", "oracle")))
        titles.append(f"{m.name}: {m.n_tokens} tokens ({m.selection})")
    if not tiles:
        canvas = Image.new("RGB", (tile, 40), "white")
        ImageDraw.Draw(canvas).text((4, 12), f"{bank!r}"[:80], fill=(20, 20, 20), font=fonts.font(12))
        return canvas
    return gallery(tiles, titles, cols=min(4, len(tiles)), tile=tile)


def calibration_picture(calibration: Any) -> Image.Image:
    """Bars: the share of top-K keyword attention inside the subject's mask, per language layer (kept ones dark)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    layers = sorted(calibration.precision)
    fig = Figure(figsize=(max(3.0, 0.35 * len(layers) + 1.5), 2.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(layers)), [calibration.precision[layer] for layer in layers],
           color=["#1f77b4" if layer in calibration.layers else "#aec7e8" for layer in layers])
    ax.set_xticks(range(len(layers)), [str(layer) for layer in layers], fontsize=8)
    ax.set_xlabel("language layer", fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_title(f"top-K attention inside the mask ({calibration.images} images); kept: {calibration.layers}",
                 fontsize=9)
    fig.tight_layout()
    return _figure_image(fig)


def _figure_image(fig: Any) -> Image.Image:
    import io

    from egokit.viz.png import to_png_bytes

    return Image.open(io.BytesIO(to_png_bytes(fig))).convert("RGB")


COMPARE_METRICS: dict[str, str] = {
    "f1": "recognition F1",
    "memory_tokens": "memory tokens per concept",
    "memory_bytes": "memory bytes per concept",
    "answer_s": "seconds per answer",
}


def compare_rows(results: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """{metric: {memory type: value}} from an `egokit ego eval` result (only the numbers it holds)."""
    out: dict[str, dict[str, float]] = {}
    for key in COMPARE_METRICS:
        value = results.get(key)
        if isinstance(value, Mapping):
            out[key] = {str(k): float(v) for k, v in value.items() if isinstance(v, (int, float))}
    return out


def compare_figure(results: Mapping[str, Any], metrics: Sequence[str] | None = None) -> Any:
    """A matplotlib figure: one bar chart per metric, memory types side by side."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = compare_rows(results)
    keys = [m for m in (metrics or list(COMPARE_METRICS)) if m in rows]
    fig = Figure(figsize=(3.3 * max(1, len(keys)), 3.0), dpi=100)
    palette = {"ego": "#1f77b4", "all_tokens": "#7f7f7f", "uniform": "#ff7f0e", "random": "#2ca02c",
               "keywords": "#9467bd", "oracle": "#d62728", "ego_dynamic": "#17becf"}
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        names = list(rows[key])
        values = [rows[key][n] for n in names]
        bars = ax.bar(range(len(names)), values, color=[palette.get(n, "#8c564b") for n in names])
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(COMPARE_METRICS[key], fontsize=10)
        for bar, v in zip(bars, values):
            label = f"{v:.2f}" if abs(v) < 10 else f"{v:.0f}"
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), label, ha="center", va="bottom", fontsize=7)
        ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def compare_picture(results: Mapping[str, Any], metrics: Sequence[str] | None = None) -> Image.Image:
    """`compare_figure` as a PIL image."""
    return _figure_image(compare_figure(results, metrics))


__all__ = ["COMPARE_METRICS", "bank_picture", "calibration_picture", "compare_figure", "compare_picture",
           "compare_rows", "memories_picture", "memory_picture", "selection_picture"]
