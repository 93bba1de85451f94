"""`egokit bench capture`: plain vs targeted capture vs eager `output_attentions`, as JSON."""

from __future__ import annotations

import argparse

from egokit.commands import options
from egokit.commands.registry import command

#: the query rows the benchmark captures are the sequence's last ones (`egokit.capture.bench.QUERY_ROWS`,
#: not imported here so that `egokit --help` stays free of torch)
QUERY_ROWS = 10


@command("bench", "benchmarks with JSON output", actions=True, order=90)
def bench_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("capture", help="plain vs targeted capture vs eager output_attentions")
    q.add_argument("--layers", type=options.count(), default=4, help="language-model layers (24 in the real model)")
    q.add_argument("--repeats", type=options.count(), default=5, help="timed runs of each variant (the median counts)")
    q.add_argument("--visual-tokens", type=options.count(), default=730, help="image tokens in the sequence")
    q.add_argument("--text-tokens", type=options.count(QUERY_ROWS), default=60,
                   help=f"text tokens in the sequence (at least {QUERY_ROWS}: the last {QUERY_ROWS} are the queries)")
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
