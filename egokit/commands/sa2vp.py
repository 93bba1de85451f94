"""`egokit sa2vp eval` (SA²VP against VPT and a linear probe on ShapesWorld tasks) and the SA²VP section of
`egokit tour` (both registered on import; `egokit.commands.discover` finds them).

The tour section stays within about a minute on a laptop CPU by running the sa2vp package's reduced
protocol (`short_comparison`) and saying so: one spatial task, SA²VP against VPT-deep with a matched
parameter count and the linear probe, on fewer training images than `egokit sa2vp eval` (whose command
the section prints for the comparison on all four tasks; `--full` adds VPT-shallow and the ablations).

Imports nothing heavy until a command runs, so `egokit --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egokit.commands import options
from egokit.commands.registry import command
from egokit.tour.report import Headline, Section, TourContext, register_section

if TYPE_CHECKING:
    from egokit.methods.sa2vp import SA2VPEvalResult

#: the model `egokit sa2vp eval` and the tour section use (the sa2vp package's DEFAULT_MODEL)
MODEL = "micro-clip"
TITLE = "SA²VP: a spatially aligned visual prompt on a frozen ViT"
#: `--threads` of `egokit sa2vp eval`: on a 2-core CPU a training step of the micro CLIP takes 91 ms on two
#: threads against 126 ms on one (SA²VP, batch 16), 62 against 107 ms (VPT-deep).
DEFAULT_THREADS = 2


# ---------------------------------------------------------------------------------------------- eval


def run_eval(model: str = MODEL, device: str = "auto", seed: int = 0, epochs: int | None = None,
             quick: bool = False, out: str | None = None, picture: str | None = None,
             progress: bool = True, threads: int | None = None, full: bool = False,
             validation: bool = False) -> SA2VPEvalResult:
    """Load the model, run the sa2vp package's `evaluate` (the comparison; with `full` also every ablation;
    `quick`: the smoke run), optionally save the result and its picture. `validation` scores on the data
    seed's validation split (for choosing settings) instead of the held-out test seed. `threads` sets torch's
    CPU threads for the run (restored afterwards)."""
    from dataclasses import replace

    import torch

    from egokit import load
    from egokit.methods.sa2vp import EvalSettings, evaluate

    if quick:
        settings = EvalSettings.quick(seed=seed, epochs=epochs)
    elif full:
        settings = EvalSettings.full(seed=seed, epochs=epochs)
    else:
        settings = EvalSettings(seed=seed) if epochs is None else EvalSettings(seed=seed, epochs=epochs)
    if validation:
        settings = replace(settings, split="val")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        result = evaluate(load(model, device=device), settings, progress=progress)
    finally:
        torch.set_num_threads(before)
    if out:
        result.save(Path(out))
    if picture:  # atomically, as every file the kit writes: Ctrl-C never leaves half a PNG
        from egokit.files import write_bytes_atomic
        from egokit.viz.png import to_png_bytes

        write_bytes_atomic(Path(picture), to_png_bytes(result.to_image()))
    return result


def summary_lines(result: SA2VPEvalResult) -> list[str]:
    """The table, the acceptance checks and the settings, as lines of text."""
    lines = [result.table(), ""]
    for key, value in result.targets().items():
        lines.append(f"{key:>32}: {value:.4f}" if isinstance(value, float) else f"{key:>32}: {value}")
    s: dict[str, Any] = result.settings
    lines.append(f"epochs {s['epochs']}, {s['n_train']} training / {s['n_test']} test images per task, "
                 f"VPT length {s['vpt_length']}, {result.seconds:.0f} s")
    return lines


@command("sa2vp", "SA²VP: a spatially aligned visual prompt on a frozen ViT, vs VPT", actions=True, order=50)
def sa2vp_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("eval", help="SA²VP vs VPT-deep and a linear probe on ShapesWorld tasks "
                                        "(under 5 min on 2 CPU cores; --full adds VPT-shallow and the ablations)")
    options.model(q, MODEL, "a CLIP/SigLIP/ViT")
    options.device(q)
    options.seed(q, help="data and training seed (test images: seed + 1000)")
    q.add_argument("--epochs", type=options.count(), default=None, help="training epochs of the prompt methods")
    size = q.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a fast smoke run (tiny data sets, one epoch)")
    size.add_argument("--full", action="store_true",
                      help="the long run: the comparison plus every ablation of SA²VP on the spatial tasks")
    q.add_argument("--validation", action="store_true",
                   help="score on the data seed's validation split (for choosing settings), not the test seed")
    options.threads(q, default=DEFAULT_THREADS)
    next(a for a in q._actions if a.dest == "threads").help = (
        f"CPU threads (default {DEFAULT_THREADS}: training steps here are 1.4-1.7x faster on two than on one; "
        "0: torch's default)")
    q.add_argument("--out", default=None, type=options.output_file(".safetensors"), help="save the full result (.safetensors) here")
    q.add_argument("--picture", default=None, type=options.output_file(".png"), help="write the summary picture (PNG) here")
    options.json_flag(q)
    q.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    result = run_eval(model=args.model, device=args.device, seed=args.seed, epochs=args.epochs, quick=args.quick,
                      out=args.out, picture=args.picture, threads=args.threads, full=args.full,
                      validation=args.validation)
    options.show(result, args.json, summary_lines)
    return 0


# ---------------------------------------------------------------------------------------------- tour


@register_section("sa2vp", TITLE, order=50)
def sa2vp_section(ctx: TourContext) -> Section:
    """SA²VP vs VPT-deep and a linear probe on "is the blue object left of the other one?", with the
    prompt-change maps."""
    from egokit.methods.sa2vp import short_comparison

    seed = ctx.seed + 1  # the hyper-parameters were chosen on seed 0's validation split
    run = short_comparison(ctx.model(MODEL), seed)
    s = run.settings
    task = s["tasks"][0]
    metrics = {
        "model": MODEL,
        "task": task,
        "train_images": s["n_train"],
        "test_images": s["n_test"],
        "epochs": s["epochs"],
        "chance": run.chance[task],
        **{f"{name}.acc": score.acc[task] for name, score in run.methods.items()},
        **{f"{name}.trainable_params": score.trainable_params for name, score in run.methods.items()},
        **{f"{name}.seconds": score.seconds for name, score in run.methods.items()},
    }
    return Section(
        key="sa2vp",
        title=TITLE,
        summary=(
            "SA²VP gives the frozen micro CLIP a second, image-shaped input: one learned prompt token per patch, "
            "which exchanges information with the image tokens through a 3×3 local cross-attention at every "
            "block. This section runs a reduced protocol to stay near a minute on a CPU: one spatial task "
            f"(is the blue object left of the other object?), {s['n_train']} training images, {s['epochs']} epochs "
            "(the full evaluation trains 4), "
            f"{s['n_test']} test images of a held-out seed ({seed + 1000}), SA²VP against VPT-deep with "
            f"{s['vpt_length']} prompt tokens per block (about the same number of trainable parameters) and "
            "a linear probe. The pictures show how much the prompt pathway changes each patch of test images; "
            "the command below runs the full comparison (four tasks; --full adds VPT-shallow and the ablations)."
        ),
        images=[("How much the prompt pathway changes each patch (norm of the added cross-attention term, "
                 "summed over blocks), with SA²VP's answer", run.maps.to_image())] if run.maps is not None else [],
        metrics=metrics,
        headline=Headline(
            method="SA²VP", metric=f"accuracy on {task!r}", value=metrics["sa2vp.acc"],
            baseline="VPT-deep, same parameter budget", baseline_value=metrics["vpt_deep.acc"],
            paper="above VPT-family prompts on VTAB-1k, FGVC, HTA (ViT-B/16)",
            rule="above VPT-deep", shows=metrics["sa2vp.acc"] > metrics["vpt_deep.acc"]),
        commands=[f"egokit sa2vp eval --json --seed {ctx.seed}"],
    )


__all__ = ["MODEL", "run_eval", "sa2vp_section", "summary_lines"]
