"""Options every command shares, declared once: `--model`, `--device`, `--seed`, `--threads`, `--json`,
and how a command prints its result (`emit_json`, `print_metrics`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def model(p: argparse.ArgumentParser, default: str, kind: str) -> None:
    """`--model NAME`: a micro zoo name, a local folder or a hub id of `kind` (e.g. "a VLM")."""
    p.add_argument("--model", default=default, help=f"micro zoo name, local folder or hub id of {kind}")


def device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def seed(p: argparse.ArgumentParser, default: int = 0, help: str = "random seed") -> None:
    p.add_argument("--seed", type=int, default=default, help=help)


def threads(p: argparse.ArgumentParser, default: int | None = 1) -> None:
    """`--threads N`: CPU threads for torch (small models run fastest on one; 0 or none: torch's default)."""
    p.add_argument("--threads", type=int, default=default,
                   help="CPU threads (small models run fastest on one; 0: torch's default)")


def json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def set_threads(n: int | None) -> None:
    """Apply `--threads` (nothing for None or 0)."""
    if n:
        import torch

        torch.set_num_threads(n)


def emit_json(obj: Any) -> None:
    """Print a JSON document to stdout (what every `--json` flag prints)."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def show(result: Any, as_json: bool, lines: Callable[[Any], list[str]]) -> None:
    """Print a command's result: its metrics as JSON with `--json` (an evaluation's `metrics()`, or the
    dict itself), else the human-readable `lines(result)`."""
    if as_json:
        emit_json(result.metrics() if callable(getattr(result, "metrics", None)) else result)
    else:
        print("\n".join(lines(result)))


def print_metrics(metrics: dict[str, Any], width: int = 24) -> None:
    """Print a flat dict of metrics, one `name: value` a line."""
    for k, v in metrics.items():
        print(f"{k:>{width}}: {v}")


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


__all__ = ["device", "emit_json", "json_flag", "model", "print_metrics", "seed", "set_threads", "show", "threads"]
