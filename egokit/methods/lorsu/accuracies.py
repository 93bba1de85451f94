"""Accuracy records of the continual protocol and their means.

An `Accuracies` record is what the zero-shot scorer measures once: {"target": {session: accuracy on that
session's target classes}, "control": {task: accuracy}} with the control tasks colour, shape and pattern
of known values. The protocol's numbers are means over a record: `target_accuracy` (over sessions) and
`control_accuracy` (over tasks).
"""

from __future__ import annotations

import math

Accuracies = dict[str, dict[str, float]]


def target_accuracy(acc: Accuracies) -> float:
    """Mean over sessions of the accuracy on that session's target classes (sessions without a number,
    NaN, left out)."""
    vals = [v for v in acc["target"].values() if not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else float("nan")


def control_accuracy(acc: Accuracies) -> float:
    """Mean over the control tasks (colour, shape, pattern of known values)."""
    vals = list(acc["control"].values())
    return float(sum(vals) / len(vals)) if vals else float("nan")


__all__ = ["Accuracies", "control_accuracy", "target_accuracy"]
