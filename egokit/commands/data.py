"""`egokit data sample`: ShapesWorld scenes as PNG files plus their ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from egokit.commands import options
from egokit.commands.registry import command


@command("data", "ShapesWorld data with ground truth", actions=True, order=80)
def data_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("sample", help="write N scenes as PNG files plus one JSON file of ground truth")
    options.seed(q)
    # --n and --size are whole numbers here; their ranges (which depend on ShapesWorld, not imported
    # here so that `egokit --help` stays light) are checked by `write_samples` before it writes anything
    q.add_argument("--n", type=int, default=8, help="how many scenes")
    q.add_argument("--size", type=int, default=64, help="image side in pixels (a multiple of 8)")
    q.add_argument("--out", required=True, help="output folder")
    q.set_defaults(func=_sample)


def _sample(args: argparse.Namespace) -> int:
    from egokit.data.export import write_samples

    out = write_samples(Path(args.out), seed=args.seed, n=args.n, size=args.size)
    print(f"egokit data sample: wrote {args.n} scenes and ground truth to {out}")
    return 0
