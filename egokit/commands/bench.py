"""`egokit bench capture`: plain vs targeted capture vs eager `output_attentions`, as JSON."""

from __future__ import annotations

import argparse

from egokit.commands import options
from egokit.commands.registry import command


@command("bench", "benchmarks with JSON output", actions=True, order=90)
def bench_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("capture", help="plain vs targeted capture vs eager output_attentions")
    q.add_argument("--layers", type=int, default=4, help="language-model layers (24 in the real model)")
    q.add_argument("--repeats", type=int, default=5)
    q.add_argument("--visual-tokens", type=int, default=730)
    q.add_argument("--text-tokens", type=int, default=60)
    options.seed(q)
    options.json_flag(q)
    q.set_defaults(func=_capture)


def _capture(args: argparse.Namespace) -> int:
    from egokit.capture.bench import run_capture_benchmark

    result = run_capture_benchmark(layers=args.layers, repeats=args.repeats, visual_tokens=args.visual_tokens,
                                   text_tokens=args.text_tokens, seed=args.seed)
    if args.json:
        options.emit_json(result)
    else:
        options.print_metrics(result, width=20)
    return 0
