"""`egokit data sample`: ShapesWorld scenes as PNG files plus their ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from egokit.commands import options
from egokit.commands.registry import command

# The ranges of `egokit.data.export.write_samples` and of ShapesWorld's image size, restated here so that
# `egokit --help` does not import the data layer (numpy); tests/faults/test_options.py keeps them equal.
MAX_SAMPLES = 100_000
MIN_SIZE, MAX_SIZE = 48, 1024


@command("data", "ShapesWorld data with ground truth", actions=True, order=80)
def data_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("sample", help="write N scenes as PNG files plus one JSON file of ground truth")
    options.seed(q)
    q.add_argument("--n", type=options.count(1, MAX_SAMPLES), default=8, help="how many scenes")
    q.add_argument("--size", type=options.count(MIN_SIZE, MAX_SIZE, multiple_of=8), default=64,
                   help=f"image side in pixels (a multiple of 8 from {MIN_SIZE} to {MAX_SIZE})")
    q.add_argument("--out", required=True, help="output folder")
    q.set_defaults(func=_sample)


def _sample(args: argparse.Namespace) -> int:
    from egokit.data.export import write_samples

    out = write_samples(Path(args.out), seed=args.seed, n=args.n, size=args.size)
    print(f"egokit data sample: wrote {args.n} scenes and ground truth to {out}")
    return 0
