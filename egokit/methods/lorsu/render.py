"""Pictures of a `LorsuEvaluation` and of one `SessionReport` (matplotlib, rendered off-screen to PIL images).

The functions read the result's fields and import neither result type (`result.py` and `session.py` import
this module for their pictures, so the imports point one way).

- `scatter_picture`: TI vs CC of every method (up-right is better: gains on the target, no forgetting);
  marker area grows with the trainable parameters.
- `heads_picture`: per session, each vision block's head scores (colour) and the heads chosen (white ring).
- `fc1_picture`: per session, for each block and fc1 neuron, the fraction of its input weights chosen.
- `curves_picture`: target and control accuracy after each session, per method.
- `summary_picture`: scatter, heads and fc1 side by side (what `_repr_png_` shows).
- `report_picture`: one session's report: loss per epoch, and its heads and fc1 choice where it made one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from egokit.methods.lorsu.accuracies import control_accuracy, target_accuracy

if TYPE_CHECKING:
    from egokit.methods.lorsu.result import LorsuEvaluation
    from egokit.methods.lorsu.session import SessionReport

COLORS = {"lorsu": "#d62728", "full": "#1f77b4", "lora": "#2ca02c", "spu": "#ff7f0e", "layernorm": "#9467bd",
          "random_heads": "#e377c2", "unmasked_fc1": "#8c564b", "lora_v1": "#7f7f7f"}
#: the ablations (drawn dashed)
DASHED = ("random_heads", "unmasked_fc1", "lora_v1")


def _figure_to_image(fig: Any, dpi: int = 100) -> Image.Image:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def draw_scatter(ax: Any, result: LorsuEvaluation) -> None:
    """TI (x) against CC (y), one labelled point per method."""
    for k, m in enumerate(result.methods):
        v = result.method_metrics(m)
        size = 30 + 25 * math.log10(max(v["trainable_params"], 1))
        marker = "o" if m in ("lorsu", "full", "lora", "spu", "layernorm") else "^"
        ax.scatter(v["ti"], v["cc"], s=size, color=COLORS.get(m, "grey"), marker=marker, edgecolor="black",
                   linewidth=0.5, zorder=3)
        ax.annotate(m, (v["ti"], v["cc"]), textcoords="offset points", xytext=(6, 4 - 10 * (k % 2)),
                    fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("TI: target accuracy gain")
    ax.set_ylabel("CC: control accuracy change")
    ax.set_title(f"{len(result.sessions)} sessions, {result.settings.get('shots')} shots, "
                 f"seed {result.settings.get('seed')}", fontsize=9)
    ax.grid(alpha=0.3)


def draw_heads(axes: Any, reps: Sequence[SessionReport], names: Sequence[str]) -> None:
    """One panel per session: blocks (rows) × heads (columns), colour = head score share, ring = chosen."""
    for ax, rep, name in zip(axes, reps, names):
        scores = np.asarray(rep.head_scores, dtype=float)
        if scores.size == 0:
            ax.axis("off")
            continue
        share = scores / np.maximum(scores.sum(axis=1, keepdims=True), 1e-30)
        ax.imshow(share, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for b, heads in enumerate(rep.heads):
            for h in heads:
                ax.scatter(h, b, s=90, facecolors="none", edgecolors="white", linewidths=1.8)
        ax.set_title(name, fontsize=8)
        ax.set_xticks(range(scores.shape[1]))
        ax.set_yticks(range(scores.shape[0]))
        ax.tick_params(labelsize=7)
    if len(reps):
        axes[0].set_ylabel("block")
        for ax in axes:
            ax.set_xlabel("head", fontsize=7)


def draw_fc1(axes: Any, reps: Sequence[SessionReport], names: Sequence[str]) -> None:
    """One panel per session: blocks (rows) × fc1 neurons (columns), colour = share of the neuron's input
    weights that were chosen."""
    for ax, rep, name in zip(axes, reps, names):
        if rep.fc1_masks is None:
            ax.axis("off")
            continue
        per_neuron = rep.fc1_masks.float().mean(dim=2).numpy()  # (blocks, out)
        ax.imshow(per_neuron, cmap="magma", vmin=0, vmax=max(float(per_neuron.max()), 1e-6), aspect="auto",
                  interpolation="nearest")
        ax.set_title(f"{name} ({sum(rep.fc1_chosen)} w)", fontsize=8)
        ax.set_yticks(range(per_neuron.shape[0]))
        ax.tick_params(labelsize=7)
    if len(reps):
        axes[0].set_ylabel("block")
        for ax in axes:
            ax.set_xlabel("fc1 neuron", fontsize=7)


def scatter_picture(result: LorsuEvaluation) -> Image.Image:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    draw_scatter(ax, result)
    return _figure_to_image(fig)


def heads_picture(result: LorsuEvaluation, method: str = "lorsu") -> Image.Image:
    plt = _plt()
    n = max(len(result.sessions), 1)
    fig, axes = plt.subplots(1, n, figsize=(2.0 * n, 2.6), squeeze=False, layout="constrained")
    draw_heads(axes[0], result.reports.get(method, []), result.sessions)
    fig.suptitle(f"{method}: head scores (share per block) and chosen heads (rings)", fontsize=9)
    return _figure_to_image(fig)


def fc1_picture(result: LorsuEvaluation, method: str = "lorsu") -> Image.Image:
    plt = _plt()
    n = max(len(result.sessions), 1)
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.1 * n + 0.6), squeeze=False, layout="constrained")
    draw_fc1(axes[:, 0], result.reports.get(method, []), result.sessions)
    fig.suptitle(f"{method}: share of each fc1 neuron's weights chosen, per block", fontsize=9)
    return _figure_to_image(fig)


def curves_picture(result: LorsuEvaluation) -> Image.Image:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    xs = list(range(len(result.sessions) + 1))
    for m in result.methods:
        t = [target_accuracy(result.before)] + [target_accuracy(c) for c in result.curves[m]]
        c = [control_accuracy(result.before)] + [control_accuracy(c) for c in result.curves[m]]
        style = "-" if m in COLORS and m not in DASHED else "--"
        a.plot(xs, t, style, color=COLORS.get(m, "grey"), label=m, marker="o", ms=3)
        b.plot(xs, c, style, color=COLORS.get(m, "grey"), label=m, marker="o", ms=3)
    labels = ["start"] + result.sessions
    for ax, title in ((a, "target accuracy (held-out classes)"), (b, "control accuracy (known attributes)")):
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    b.legend(fontsize=7, loc="best")
    return _figure_to_image(fig)


def summary_picture(result: LorsuEvaluation) -> Image.Image:
    """Scatter (left), chosen heads (top right) and chosen fc1 weights (bottom right) in one figure."""
    plt = _plt()
    n = max(len(result.sessions), 1)
    fig = plt.figure(figsize=(4.5 + 1.9 * n, 5.4), layout="constrained")
    grid = fig.add_gridspec(2, n + 2, width_ratios=[1.6, 0.1] + [1.0] * n, height_ratios=[1, 1])
    draw_scatter(fig.add_subplot(grid[:, 0]), result)
    method = "lorsu" if "lorsu" in result.reports else next(iter(result.reports), "lorsu")
    reps = result.reports.get(method, [])
    draw_heads([fig.add_subplot(grid[0, 2 + i]) for i in range(n)], reps, result.sessions)
    draw_fc1([fig.add_subplot(grid[1, 2 + i]) for i in range(n)], reps, result.sessions)
    fig.suptitle(f"LoRSU on {result.model_name}: methods (left); chosen heads (top) and fc1 weights (bottom) "
                 "per session", fontsize=10)
    return _figure_to_image(fig)


def report_picture(report: SessionReport) -> Image.Image:
    """One session's report: the training loss per epoch (left) and, where the method chose them, the head
    scores with the chosen heads and the share of each fc1 neuron's weights chosen, per block."""
    plt = _plt()
    panels = ["loss"] + (["heads"] if report.head_scores else []) + (["fc1"] if report.fc1_masks is not None else [])
    widths = {"loss": 1.2, "heads": 1.0, "fc1": 2.2}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 + 2.3 * sum(widths[p] for p in panels), 2.8),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [widths[p] for p in panels]})
    name = report.session or report.method
    for ax, panel in zip(axes[0], panels):
        if panel == "loss":
            if report.losses:
                ax.plot(range(1, len(report.losses) + 1), report.losses, marker="o", ms=3,
                        color=COLORS.get(report.method, "grey"))
            else:
                ax.text(0.5, 0.5, "no training epochs", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel("epoch", fontsize=7)
            ax.set_title("training loss", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        elif panel == "heads":
            draw_heads([ax], [report], [f"{name}: heads"])
            ax.set_ylabel("block")
        else:
            draw_fc1([ax], [report], [name])
            ax.set_ylabel("block")
    fig.suptitle(f"{report.method} on session {name!r}: {report.trainable_params} trainable, "
                 f"{report.optimizer_bytes} optimizer bytes, {report.seconds:.1f} s", fontsize=9)
    return _figure_to_image(fig)


__all__ = ["curves_picture", "fc1_picture", "heads_picture", "report_picture", "scatter_picture",
           "summary_picture"]
