"""Options every command shares, declared once: `--model`, `--device`, `--seed`, `--threads`, `--json`;
the argparse types of every numeric option (`count`, `seed_number`, `thread_count`, `budget`, `number`) and
of `--keywords` (`words`), so a wrong value is one clear line and exit code 2 before any work; and how a
command prints its result (`emit_json`, `print_metrics`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from egokit.argtypes import MAX_SEED, count, number, seed_number, thread_count

# ------------------------------------------------------------------------------------------ option types
# The numeric types shared with the recipes' own command lines live one layer down, in egokit.argtypes.


def budget(text: str) -> int | float:
    """The argparse type of a token budget: a count ("13", at least 1) or a share of the tokens in (0, 1]
    ("0.2"). A whole number is a count, a number with a point or an exponent a share."""
    hint = "a token count of at least 1 (13) or a share of the tokens in (0, 1] (0.2)"
    try:
        value: int | float = int(text.strip())
    except (ValueError, AttributeError):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {hint}, got {text!r}") from None
    if isinstance(value, int) and value < 1:
        raise argparse.ArgumentTypeError(f"must be {hint}, got {text!r}")
    if isinstance(value, float) and not 0.0 < value <= 1.0:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be {hint}, got {text!r}; write a count without a point")
    return value


def words(text: str) -> list[str]:
    """The argparse type of a list of words given as one quoted argument (`--keywords "red circle"`). An
    empty or blank value is refused: leave the option out to use the model's own description."""
    found = text.split()
    if not found:
        raise argparse.ArgumentTypeError(
            f"needs at least one word, got {text!r}; leave the option out to use the model's description")
    return found


def output_file(*suffixes: str) -> Callable[[str], str]:
    """The argparse type of a file a command writes (`--out x.png`): it must end in one of `suffixes` and its
    folder must exist and not be a file, checked before any work so nothing runs for a result that cannot be
    written. Missing folders are refused (never created) everywhere, the same rule for every command."""

    def parse(text: str) -> str:
        path = Path(text).expanduser()
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"must name a {' or '.join(suffixes)} file, got {text!r}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder; name a file inside it")
        folder = path.parent
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"the folder {str(folder)!r} does not exist; create it or choose "
                                             "another path")
        return str(path)

    return parse


# ------------------------------------------------------------------------------------------ shared options


def model(p: argparse.ArgumentParser, default: str, kind: str) -> None:
    """`--model NAME`: a micro zoo name, a local folder or a hub id of `kind` (e.g. "a VLM")."""
    p.add_argument("--model", default=default, help=f"micro zoo name, local folder or hub id of {kind}")


def device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def seed(p: argparse.ArgumentParser, default: int = 0, help: str = "random seed") -> None:
    p.add_argument("--seed", type=seed_number, default=default, help=help)


def threads(p: argparse.ArgumentParser, default: int | None = 1) -> None:
    """`--threads N`: CPU threads for torch (small models run fastest on one; 0 or none: torch's default)."""
    p.add_argument("--threads", type=thread_count, default=default,
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


__all__ = ["MAX_SEED", "budget", "count", "device", "emit_json", "json_flag", "model", "number", "print_metrics",
           "seed", "seed_number", "set_threads", "show", "thread_count", "threads", "words"]
