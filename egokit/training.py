"""Plumbing shared by the zoo recipes: seeds, learning-rate schedule, resumable checkpoints, JSON files
(written atomically through `egokit.files`) and the fp16 export of a trained model. Devices come from
`egokit.models.loading.resolve_device`, the kit's one resolver.

A training state (`state.safetensors` in the run folder, no pickle) holds model, heads and optimizer state dicts plus the
step reached; it is written atomically every few minutes and read back with `weights_only=True`.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egokit.files import atomic_path, write_text_atomic

STATE_FILE = "state.safetensors"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(device: torch.device, threads: int | None = None) -> None:
    """Keep CPU training polite on small shared machines: at most 2 threads unless told otherwise."""
    if device.type == "cpu":
        torch.set_num_threads(threads or min(2, torch.get_num_threads()))


def lr_at(step: int, total: int, peak: float, warmup: int, floor: float = 0.05) -> float:
    """Linear warm-up to `peak`, then cosine decay to `floor * peak` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t)))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON with sorted keys, atomically (the kit's one writer, `egokit.files`)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_state(run_dir: Path, state: Mapping[str, Any]) -> None:
    """Save a resumable training state atomically: its tensors in safetensors, the nested structure
    around them (dicts, lists, numbers, strings) as JSON in the file's metadata. No pickle."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(dict(state), tensors)
    with atomic_path(run_dir / STATE_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"egokit.state": json.dumps(skeleton)})


def load_state(run_dir: Path, device: torch.device) -> dict[str, Any] | None:
    """The saved training state of a run folder, or None when there is none."""
    from safetensors import safe_open

    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        skeleton = json.loads(f.metadata()["egokit.state"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return _unflatten(skeleton, tensors)


def _flatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able copy of `obj` with each tensor moved into `tensors` and replaced by its key."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().contiguous().cpu()
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        # JSON keys are strings: remember int keys (optimizer state is keyed by parameter index)
        return {"__dict__": [[k, _flatten(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, tensors) for v in obj]
    return obj


def _unflatten(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    """torch's CPU generator state (CUDA's too when present), to resume a run bit for bit."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def export_fp16(model: torch.nn.Module, folder: Path, **save_kwargs: Any) -> None:
    """`save_pretrained` a copy of `model` in float16 (safetensors) into `folder`."""
    import copy

    half = copy.deepcopy(model).to("cpu", dtype=torch.float16)
    half.config.dtype = "float16"
    half.save_pretrained(folder, safe_serialization=True, **save_kwargs)


def folder_size(folder: Path) -> int:
    """Total bytes of the files in a folder (recursively)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


class Every:
    """True once every `seconds` of wall time (for periodic checkpoints)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            return True
        return False


def autocast(device: torch.device, precision: str) -> Any:
    """The forward pass's precision context: bfloat16 autocast for "bf16" (weights, gradients and optimizer
    state stay float32), nothing for "fp32"."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def override_recipe(recipe: object, args: Any) -> None:
    """The recipe fields a command line sets (`--steps`, `--batch`, `--lr`, `--warmup`, `--precision`,
    `--init`), each only when given."""
    for flag, cast in (("steps", int), ("batch", int), ("lr", float), ("warmup", int), ("precision", str),
                       ("init", str)):
        value = getattr(args, flag, None)
        if value is not None:
            setattr(recipe, flag, cast(value))


def init_folder(folder: str, model_type: str, what: str) -> Path:
    """The checkpoint folder `--init` names, checked: it holds a `config.json` of `model_type` (else an
    `InputError` that says what is there instead)."""
    from egokit.errors import InputError

    path = Path(folder)
    if not (path / "config.json").is_file():
        raise InputError(f"--init {folder}: no checkpoint there (config.json missing)")
    kind = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    if kind != model_type:
        raise InputError(f"--init {folder}: it is a {kind} checkpoint, not a {what}")
    return path


class TimeLimitReached(Exception):
    """A run stopped at its wall-time limit after saving its state; the same command goes on from there."""

    def __init__(self, step: int, steps: int, run_dir: Path) -> None:
        super().__init__(f"stopped at the time limit after step {step} of {steps}; the state is saved in "
                         f"{run_dir}: run the same command again to go on from there")
        self.step, self.steps, self.run_dir = step, steps, run_dir


class LossLog:
    """Appends `{"step": ..., <loss>: ...}` lines to `losses.jsonl` in a run folder every `every` steps, so a
    run's loss curve survives it (a resumed run appends after the step it resumed from; a reader keeps the
    last line of each step)."""

    def __init__(self, run_dir: Path, every: int = 25, fresh: bool = False) -> None:
        self.path = Path(run_dir) / "losses.jsonl"
        self.every = max(1, int(every))
        if fresh:  # a run from step 0 (e.g. --no-resume): an earlier run's curve must not mix into it
            self.path.unlink(missing_ok=True)

    def __call__(self, step: int, losses: Mapping[str, Any]) -> None:
        if step % self.every:
            return
        row = {"step": int(step), **{k: round(float(v.detach() if isinstance(v, torch.Tensor) else v), 5)
                                     for k, v in losses.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def read_losses(run_dir: Path) -> list[dict[str, float]]:
    """The loss curve `LossLog` wrote: one row per logged step (the last one written), in step order."""
    path = Path(run_dir) / "losses.jsonl"
    rows: dict[int, dict[str, float]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[int(row["step"])] = row
    return [rows[k] for k in sorted(rows)]


def copy_losses(run_dir: Path, out: Path) -> None:
    """Write the run's loss curve (`read_losses`) beside the exported model, as `losses.jsonl`."""
    rows = read_losses(run_dir)
    if rows:
        write_text_atomic(Path(out) / "losses.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def describe_device(device: torch.device) -> str:
    """A short human description of where a run happened (for model cards)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def same_recipe(saved: Mapping[str, Any] | None, current: Mapping[str, Any], also: tuple[str, ...] = ()) -> bool:
    """Whether a saved state belongs to this recipe. `steps` may differ: a run can be extended or cut
    short on resume (the learning-rate schedule follows the new length from the step reached); so may
    the keys in `also` (settings of a later stage that the saved state never used)."""
    if saved is None:
        return False
    skip = {"steps", *also}
    return ({k: v for k, v in saved.items() if k not in skip}
            == {k: v for k, v in current.items() if k not in skip})


def schedule_segments(state: Mapping[str, Any] | None, start: int, steps: int) -> list[list[int]]:
    """The learning-rate schedules a run went through, as [first step, schedule length] pairs.

    A run extended on resume (`--steps` larger than the saved recipe's) changes its schedule at the
    step reached, so a fresh run of the final length is not the same run; the pairs say how to repeat
    it: one command per pair, each with `--steps <length>`, resuming the previous one's state."""
    if state is None:
        return [[0, int(steps)]]
    segments = [list(map(int, s)) for s in state.get("segments", [[0, int(state["recipe"]["steps"])]])]
    if segments[-1][1] != int(steps):
        segments.append([int(start), int(steps)])
    return segments
