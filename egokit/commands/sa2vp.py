"""`egokit sa2vp eval`: SA²VP against VPT and a linear probe on ShapesWorld tasks, from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egokit.commands import options
from egokit.commands.registry import command

if TYPE_CHECKING:
    from egokit.methods.sa2vp.result import SA2VPEvalResult


def run_eval(model: str = "micro-clip", device: str = "auto", seed: int = 0, epochs: int | None = None,
             quick: bool = False, out: str | None = None, picture: str | None = None,
             progress: bool = True, threads: int | None = None) -> SA2VPEvalResult:
    """Load the model, run `sa2vp_eval.evaluate`, optionally save the result and its picture. `threads`
    sets torch's CPU threads for the run (restored afterwards)."""
    import torch

    from egokit import load
    from egokit.methods.sa2vp.evaluation import EvalSettings, evaluate

    settings = EvalSettings.quick(seed=seed, epochs=epochs) if quick else EvalSettings(seed=seed)
    if epochs is not None and not quick:
        settings = EvalSettings(seed=seed, epochs=epochs)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        result = evaluate(load(model, device=device), settings, progress=progress)
    finally:
        torch.set_num_threads(before)
    if out:
        result.save(Path(out))
    if picture:
        result.to_image().save(Path(picture))
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
    q = actions.add_parser("eval", help="SA²VP vs VPT-deep, VPT-shallow and a linear probe on ShapesWorld tasks, ablations")
    options.model(q, "micro-clip", "a CLIP/SigLIP/ViT")
    options.device(q)
    options.seed(q, help="data and training seed (test images: seed + 1000)")
    q.add_argument("--epochs", type=int, default=None, help="training epochs of the prompt methods")
    q.add_argument("--quick", action="store_true", help="a fast smoke run (tiny data sets, one epoch)")
    options.threads(q, default=None)
    q.add_argument("--out", default=None, help="save the full result (.safetensors) here")
    q.add_argument("--picture", default=None, help="write the summary picture (PNG) here")
    options.json_flag(q)
    q.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    result = run_eval(model=args.model, device=args.device, seed=args.seed, epochs=args.epochs, quick=args.quick,
                      out=args.out, picture=args.picture, threads=args.threads)
    if args.json:
        options.emit_json(result.to_dict())
    else:
        print("\n".join(summary_lines(result)))
    return 0
