"""What `egokit lorsu eval` runs and prints (kept out of `egokit.cli` so that `egokit --help` stays fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_eval(model: str = "micro-clip", device: str = "auto", shots: int = 5, seed: int = 1, quick: bool = False,
             out: str | None = None, picture: str | None = None, threads: int = 1) -> dict[str, Any]:
    """Load `model`, run the continual protocol and return `LorsuEvaluation.metrics()`; optionally save the
    result and its summary picture. `threads`: CPU threads for torch (0 keeps torch's default); one is
    fastest for the micro models, and far faster than two on a busy machine."""
    import torch

    from egokit import load
    from egokit.methods.lorsu_eval import evaluate

    if threads > 0:
        torch.set_num_threads(threads)
    result = evaluate(load(model, device=device), shots=shots, seed=seed, quick=quick)
    if out:
        result.save(Path(out))
    if picture:
        from egokit.viz.png import to_png_bytes

        _write_bytes(Path(picture), to_png_bytes(result.to_image()))
    return result.metrics()


def _write_bytes(path: Path, data: bytes) -> None:
    """Write `data` through a temporary file in the same folder and a rename."""
    import os
    import uuid

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


__all__ = ["run_eval", "summary_lines"]
