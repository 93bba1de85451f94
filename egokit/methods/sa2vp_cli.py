"""What `egokit sa2vp eval` runs and prints (the parser lines live in `egokit.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egokit.methods.sa2vp_result import SA2VPEvalResult


def run_eval(model: str = "micro-clip", device: str = "auto", seed: int = 0, epochs: int | None = None,
             quick: bool = False, out: str | None = None, picture: str | None = None,
             progress: bool = True, threads: int | None = None) -> SA2VPEvalResult:
    """Load the model, run `sa2vp_eval.evaluate`, optionally save the result and its picture. `threads`
    sets torch's CPU threads for the run (restored afterwards)."""
    import torch

    from egokit import load
    from egokit.methods.sa2vp_eval import EvalSettings, evaluate

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
