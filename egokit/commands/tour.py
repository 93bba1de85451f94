"""`egokit tour`: run every method's registered tour section on the micro zoo and write the HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from egokit.commands import options
from egokit.commands.registry import command


@command("tour", "run every method on the micro zoo and write an HTML report", order=0)
def tour_command(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="egokit-report", help="folder for index.html and metrics.json")
    options.device(p)
    options.seed(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from egokit.commands import discover
    from egokit.tour.report import run_tour

    index = run_tour(out_dir=Path(args.out), device=args.device, seed=args.seed, import_errors=discover())
    print(f"egokit tour: report written to {index}")
    return 0
