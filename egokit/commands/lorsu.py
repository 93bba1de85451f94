"""`egokit lorsu eval`: the continual few-shot protocol (LoRSU against its baselines) from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from egokit.commands import options
from egokit.commands.registry import command


def run_eval(model: str = "micro-clip", device: str = "auto", shots: int = 5, seed: int = 1, quick: bool = False,
             out: str | None = None, picture: str | None = None, threads: int = 1) -> dict[str, Any]:
    """Load `model`, run the continual protocol and return `LorsuEvaluation.metrics()`; optionally save the
    result and its summary picture. `threads`: CPU threads for torch (0 keeps torch's default); one is
    fastest for the micro models, and far faster than two on a busy machine."""
    from egokit import load
    from egokit.methods.lorsu.evaluation import evaluate

    options.set_threads(threads)
    result = evaluate(load(model, device=device), shots=shots, seed=seed, quick=quick)
    if out:
        result.save(Path(out))
    if picture:
        from egokit.files import write_bytes_atomic
        from egokit.viz.png import to_png_bytes

        write_bytes_atomic(Path(picture), to_png_bytes(result.to_image()))
    return result.metrics()


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """A readable table of `metrics` for the terminal."""
    lines = [f"LoRSU eval on {metrics['model']}: {len(metrics['sessions'])} sessions, "
             f"{metrics['settings']['shots']} shots, seed {metrics['settings']['seed']}",
             f"before: target {metrics['before']['target']:.3f}, control {metrics['before']['control']:.3f}",
             f"{'method':<14}{'TI':>8}{'CC':>8}{'trainable':>11}{'opt bytes':>11}{'seconds':>9}"]
    for group in ("methods", "ablations"):
        for name, v in metrics[group].items():
            lines.append(f"{name:<14}{v['ti']:>+8.3f}{v['cc']:>+8.3f}{v['trainable_params']:>11d}"
                         f"{v['optimizer_bytes']:>11d}{v['seconds']:>9.1f}")
    return lines



@command("lorsu", "LoRSU: sparse structured updates of an imperfect CLIP vision encoder", actions=True, order=30)
def lorsu_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("eval", help="continual few-shot sessions on held-out ShapesWorld attributes: TI, CC, cost")
    options.model(q, "micro-clip", "a CLIP")
    options.device(q)
    q.add_argument("--shots", type=int, default=5, help="training images per class and session")
    options.seed(q, default=1, help="seed of the few shots, test images and initialisation")
    q.add_argument("--quick", action="store_true", help="a fast smoke run (few epochs and test images)")
    q.add_argument("--out", default=None, help="save the full result (.safetensors) here")
    q.add_argument("--picture", default=None, help="write the summary picture (PNG) here")
    options.threads(q)
    options.json_flag(q)
    q.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    metrics = run_eval(model=args.model, device=args.device, shots=args.shots, seed=args.seed, quick=args.quick,
                       out=args.out, picture=args.picture, threads=args.threads)
    if args.json:
        options.emit_json(metrics)
    else:
        print("\n".join(summary_lines(metrics)))
    return 0


__all__ = ["run_eval", "summary_lines"]
