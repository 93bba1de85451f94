"""The argparse types of numeric options, shared by the command line (`egokit.commands.options`) and the
recipes' own command lines (`python -m egokit.recipes.train|eval`), which sit a layer below the commands: a
wrong value is one clear line and exit code 2 before any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: the largest seed a command accepts: seeds reach numpy and torch, sometimes offset or scaled
MAX_SEED = 2**32 - 1


def _whole(text: str) -> int:
    """`text` as a whole number, or an `ArgumentTypeError` that shows what was given."""
    try:
        return int(text.strip())
    except (ValueError, AttributeError):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def count(minimum: int = 1, maximum: int | None = None, multiple_of: int = 1) -> Callable[[str], int]:
    """The argparse type of a whole number in [minimum, maximum] (no upper bound for None) that is a
    multiple of `multiple_of`: `type=options.count()` for a count of at least one."""

    def parse(text: str) -> int:
        value = _whole(text)
        span = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        if value < minimum or (maximum is not None and value > maximum) or value % multiple_of:
            kind = f"a multiple of {multiple_of} " if multiple_of > 1 else "a whole number "
            raise argparse.ArgumentTypeError(f"must be {kind}{span}, got {text!r}")
        return value

    parse.__name__ = "count"  # argparse names the type in its messages
    return parse


def seed_number(text: str) -> int:
    """The argparse type of `--seed`: a whole number from 0 to `MAX_SEED`."""
    value = _whole(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_SEED}, got {text!r}")
    return value


def thread_count(text: str) -> int:
    """The argparse type of `--threads`: a whole number ≥ 0, where 0 keeps torch's default."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 0 (0: torch's default), got {text!r}")
    return value


def number(text: str, example: str = "-7.35e-4") -> float:
    """The argparse type of a real-valued option (such as CLIP4DM's ε): any finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (such as {example}), got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_number(text: str) -> float:
    """The argparse type of a finite number above zero (a learning rate)."""
    value = number(text, example="3e-4")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0 (such as 3e-4), got {text!r}")
    return value


__all__ = ["MAX_SEED", "count", "number", "positive_number", "seed_number", "thread_count"]
