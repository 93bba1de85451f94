"""LoRSU from the command line and in the tour.

- `egokit lorsu eval`: the continual few-shot protocol (LoRSU against its baselines); `--json` prints
  `LorsuEvaluation.metrics()`, otherwise a readable table (`summary_lines`).
- the LoRSU section of `egokit tour` (registered on import; `egokit tour` finds it through
  `egokit.commands.discover`). To stay within about a minute on a laptop CPU it runs a reduced protocol,
  and says so: the five sessions with 5 shots per class, LoRSU against full fine-tuning and LoRA only,
  fewer epochs and smaller test sets than `egokit lorsu eval` (whose command the section prints for the
  full comparison).

The method is imported inside the functions, so `egokit --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from egokit.commands import options
from egokit.commands.registry import command
from egokit.tour.report import Headline, Section, TourContext, register_section

#: `egokit.methods.lorsu.DEFAULT_MODEL`, spelled here so that registering the command imports no torch
MODEL = "micro-clip"
TITLE = "LoRSU: fixing an imperfect vision encoder with sparse, structured updates"
TOUR_METHODS = ("lorsu", "full", "lora")
COLUMNS = ("ti", "cc", "trainable_params", "optimizer_bytes", "seconds")


# ------------------------------------------------------------------------------------------ egokit lorsu eval


def run_eval(model: str = MODEL, device: str = "auto", shots: int = 5, seed: int = 1, quick: bool = False,
             out: str | None = None, picture: str | None = None, threads: int = 1) -> Any:
    """Load `model`, run the continual protocol and return its `LorsuEvaluation`; optionally save the
    result and its summary picture. `threads`: CPU threads for torch (0 keeps torch's default); one is
    fastest for the micro models, and far faster than two on a busy machine."""
    from egokit import load
    from egokit.methods.lorsu import evaluate

    options.set_threads(threads)
    result = evaluate(load(model, device=device), shots=shots, seed=seed, quick=quick)
    if out:
        result.save(Path(out))
    if picture:
        from egokit.files import write_bytes_atomic
        from egokit.viz.png import to_png_bytes

        write_bytes_atomic(Path(picture), to_png_bytes(result.to_image()))
    return result


def summary_lines(result: Any) -> list[str]:
    """A readable table of a `LorsuEvaluation` for the terminal."""
    before = result.before_metrics()
    lines = [f"LoRSU eval on {result.model_name}: {len(result.sessions)} sessions, "
             f"{result.settings['shots']} shots, seed {result.settings['seed']}",
             f"before: target {before['target']:.3f}, control {before['control']:.3f}",
             f"{'method':<14}{'TI':>8}{'CC':>8}{'trainable':>11}{'opt bytes':>11}{'seconds':>9}"]
    summary = result.summary()
    for group in ("methods", "ablations"):
        for name, v in summary[group].items():
            lines.append(f"{name:<14}{v['ti']:>+8.3f}{v['cc']:>+8.3f}{v['trainable_params']:>11d}"
                         f"{v['optimizer_bytes']:>11d}{v['seconds']:>9.1f}")
    return lines


@command("lorsu", "LoRSU: sparse structured updates of an imperfect CLIP vision encoder", actions=True, order=30)
def lorsu_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("eval", help="continual few-shot sessions on held-out ShapesWorld attributes: TI, CC, cost")
    options.model(q, MODEL, "a CLIP")
    options.device(q)
    q.add_argument("--shots", type=options.count(), default=5, help="training images per class and session")
    options.seed(q, default=1, help="seed of the few shots, test images and initialisation")
    q.add_argument("--quick", action="store_true", help="a fast smoke run (few epochs and test images)")
    q.add_argument("--out", default=None, type=options.output_file(".safetensors"), help="save the full result (.safetensors) here")
    q.add_argument("--picture", default=None, type=options.output_file(".png"), help="write the summary picture (PNG) here")
    options.threads(q)
    options.json_flag(q)
    q.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    result = run_eval(model=args.model, device=args.device, shots=args.shots, seed=args.seed, quick=args.quick,
                      out=args.out, picture=args.picture, threads=args.threads)
    options.show(result, args.json, summary_lines)
    return 0


# ------------------------------------------------------------------------------------------ the tour


def tour_settings(seed: int) -> Any:
    """The reduced settings the tour runs (documented in the section's text)."""
    from egokit.methods.lorsu import Settings

    return Settings(shots=5, seed=seed, epochs=10, target_per_class=12, control_images=96)


@register_section("lorsu", TITLE, order=30)
def lorsu_section(ctx: TourContext) -> Section:
    """Five continual few-shot sessions on the micro CLIP's held-out attributes: TI, CC and cost."""
    from egokit.methods.lorsu import MAIN_METHODS, evaluate

    seed = ctx.seed + 1  # the hyper-parameters were chosen on seed 0
    settings = tour_settings(seed)
    result = evaluate(ctx.model(MODEL), methods=TOUR_METHODS, settings=settings, progress=False)
    before = result.before_metrics()
    metrics = {
        "model": MODEL,
        "sessions": len(result.sessions),
        "shots": settings.shots,
        "epochs": settings.epochs,
        "target_before": before["target"],
        "control_before": before["control"],
        **{f"{name}.{k}": result.method_metrics(name)[k] for name in result.methods if name in MAIN_METHODS
           for k in COLUMNS},
    }
    return Section(
        key="lorsu",
        title=TITLE,
        summary=(
            "The micro CLIP never saw pink, hexagons, purple triangles or orange striped objects. Five "
            "continual sessions with 5 images per class teach them to the vision encoder alone; TI is the "
            "gain on those held-out classes and CC the change on colours, shapes and patterns it already "
            "knew. This section runs a reduced protocol to stay near a minute on a CPU (LoRSU, full "
            f"fine-tuning and LoRA only, {settings.epochs} epochs, {settings.target_per_class} test images per "
            f"target class, {settings.control_images} control images, seed {seed}); the command below runs "
            "all methods, SPU, LayerNorm tuning and the ablations at full size."
        ),
        images=[("TI vs CC per method; LoRSU's chosen heads and fc1 weights per session and block",
                 result.to_image()),
                ("Target and control accuracy after each session", result.curves_image())],
        metrics=metrics,
        headline=_headline(result),
        commands=[f"egokit lorsu eval --json --shots 5 --seed {seed}"],
    )


def _headline(result: Any) -> Headline:
    """TI with CC against full fine-tuning: the paper's claim is a gain close to full fine-tuning's with
    less forgetting."""
    lorsu, full = result.method_metrics("lorsu"), result.method_metrics("full")
    shows = lorsu["ti"] >= 0.8 * full["ti"] and lorsu["cc"] > full["cc"]
    return Headline(
        method="LoRSU", metric="target gain TI (control change CC)", value=lorsu["ti"],
        baseline=f"full fine-tuning (LoRSU CC {lorsu['cc']:+.3f}, full CC {full['cc']:+.3f})",
        baseline_value=full["ti"],
        paper="TI close to full fine-tuning with much less forgetting (CLIP ViT-L/14, 5 sessions)",
        rule="TI ≥ 0.8 × full's and CC above full's", shows=shows)


__all__ = ["MODEL", "lorsu_section", "run_eval", "summary_lines", "tour_settings"]
