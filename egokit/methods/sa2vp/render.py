"""Pictures of an SA²VP evaluation: accuracy per task and method, the ablations, the prompt-change maps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from egokit.methods.sa2vp.result import SA2VPEvalResult

COLOURS = {"sa2vp": "#d62728", "vpt_deep": "#1f77b4", "vpt_shallow": "#7fb2e5", "linear": "#7f7f7f"}


def eval_chart(result: SA2VPEvalResult) -> Image.Image:
    """Grouped bars of test accuracy per task and method (chance dashed) and the ablation bars."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from egokit.viz.png import to_png_bytes

    methods = list(result.methods)
    tasks = list(result.methods[methods[0]].acc) if methods else []
    fig = Figure(figsize=(10, 3.6))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(tasks))
    for j, name in enumerate(methods):
        m = result.methods[name]
        ax.bar(x + (j - (len(methods) - 1) / 2) * width, [m.acc[t] for t in tasks], width,
               label=f"{name} ({m.trainable_params:,} params)", color=COLOURS.get(name))
    for i, t in enumerate(tasks):
        if t in result.chance:
            ax.hlines(result.chance[t], i - 0.45, i + 0.45, colors="k", linestyles="dashed", linewidth=1)
    ax.set_xticks(x, [t + ("" if t in result.spatial_tasks else " (control)") for t in tasks])
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy (held-out seed)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("accuracy per task (dashed: most frequent class)", fontsize=9)
    names = ["sa2vp", *result.ablations]
    values = [result.methods["sa2vp"].acc_spatial_mean if "sa2vp" in result.methods else np.nan,
              *result.ablations.values()]
    labels = ["local (SA²VP)" if n == "sa2vp" else n.replace("_", " ") for n in names]
    ax2.barh(np.arange(len(names)), values, color=["#d62728"] + ["#bbbbbb"] * (len(names) - 1))
    ax2.set_yticks(np.arange(len(names)), labels, fontsize=8)
    ax2.invert_yaxis()
    finite = [v for v in values if np.isfinite(v)]
    lo = max(0.0, min(finite) - 0.1) if finite else 0.0
    ax2.set_xlim(lo, 1.0)
    for i, v in enumerate(values):
        if np.isfinite(v):
            ax2.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    ax2.set_title("ablations: spatial mean accuracy", fontsize=9)
    fig.tight_layout()
    import io

    return Image.open(io.BytesIO(to_png_bytes(fig))).convert("RGB")


def eval_picture(result: SA2VPEvalResult) -> Image.Image:
    """The chart, with the prompt-change maps underneath when the result has them."""
    chart = eval_chart(result)
    if result.maps is None:
        return chart
    maps = result.maps.to_image()
    width = max(chart.width, maps.width)
    sheet = Image.new("RGB", (width, chart.height + maps.height), (255, 255, 255))
    sheet.paste(chart, ((width - chart.width) // 2, 0))
    sheet.paste(maps, ((width - maps.width) // 2, chart.height))
    return sheet
