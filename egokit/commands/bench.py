"""`egokit bench capture`: plain vs targeted capture vs eager `output_attentions`, as JSON."""

from __future__ import annotations

import argparse

from egokit.commands import options
from egokit.commands.registry import command

#: the query rows the benchmark captures are the sequence's last ones (`egokit.capture.bench.QUERY_ROWS`,
#: not imported here so that `egokit --help` stays free of torch)
QUERY_ROWS = 10
#: the real checkpoints the real-geometry benchmark covers (`egokit.models.tiny.real_checkpoints()`)
REAL_NAMES = ("clip", "siglip", "idefics3", "smolvlm", "llava", "llava_onevision", "paligemma", "qwen2_vl")
#: real-geometry defaults (`egokit.capture.bench.REAL_DEFAULTS`) and what `--quick` changes
REAL_DEFAULTS = {"scales": (1, 2, 4), "layers": 1, "repeats": 3, "warmup": 1, "max_gflop": 250.0, "max_eager_gib": 4.0}
REAL_QUICK = {"scales": (1,), "layers": 1, "repeats": 1, "warmup": 1}


def _scales(text: str) -> tuple[int, ...]:
    parse = options.count()
    values = tuple(parse(part) for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"must be whole numbers ≥ 1 separated by commas, got {text!r}")
    return values


_scales.__name__ = "scales"


def _positive(text: str) -> float:
    value = options.number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


_positive.__name__ = "number"


@command("bench", "benchmarks with JSON output", actions=True, order=90)
def bench_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser(
        "capture", help="plain vs targeted capture vs eager output_attentions",
        description="Time and peak memory of a plain sdpa forward, targeted capture and eager output_attentions. "
                    "--geometry synthetic (default): a Qwen2 LM shaped like LLaVA-OneVision-0.5B's. --geometry real: "
                    "every real checkpoint's sequence length for one photo (and --scales times it) through its "
                    "language-model shape (CLIP/SigLIP: vision tower), cut in depth. Runs on the CPU.")
    q.add_argument("--geometry", choices=("synthetic", "real"), default="synthetic",
                   help="synthetic (one shape, --visual-tokens/--text-tokens) or real (per checkpoint)")
    q.add_argument("--family", action="append", choices=REAL_NAMES, metavar="NAME",
                   help=f"with --geometry real: a checkpoint to run (repeatable; default all: {', '.join(REAL_NAMES)})")
    q.add_argument("--layers", type=options.count(), default=None,
                   help="layers of the model (default 4 synthetic, 1 real; the JSON gives the real model's)")
    q.add_argument("--repeats", type=options.count(), default=None,
                   help="timed rounds (the median counts; default 7 synthetic, 3 real)")
    q.add_argument("--warmup", type=options.count(), default=None,
                   help="untimed rounds first, the first one checking that plain and targeted make the same "
                        "sdpa call (default 2 synthetic, 1 real)")
    q.add_argument("--visual-tokens", type=options.count(), default=730, help="image tokens in the sequence (synthetic)")
    q.add_argument("--text-tokens", type=options.count(QUERY_ROWS), default=60,
                   help=f"text tokens in the sequence (synthetic; at least {QUERY_ROWS}: the last {QUERY_ROWS} are "
                        "the queries)")
    q.add_argument("--scales", type=_scales, default=None,
                   help="with --geometry real: multiples of the real sequence length to run (default 1,2,4)")
    q.add_argument("--max-gflop", type=_positive, default=REAL_DEFAULTS["max_gflop"],
                   help="with --geometry real: skip a case whose plain forward needs more GFLOP than this "
                        f"(default {REAL_DEFAULTS['max_gflop']:g}: a few minutes in all on a 2-core CPU)")
    q.add_argument("--max-eager-gib", type=_positive, default=REAL_DEFAULTS["max_eager_gib"],
                   help="with --geometry real: leave out eager where its attention maps would need more GiB "
                        f"(default {REAL_DEFAULTS['max_eager_gib']:g})")
    q.add_argument("--quick", action="store_true",
                   help="with --geometry real: the real length only, one timed round (a smoke test)")
    q.add_argument("--no-memory", dest="memory", action="store_false", help="times only (no peak-memory runs)")
    options.seed(q)
    options.json_flag(q)
    q.set_defaults(func=_capture)


def _capture(args: argparse.Namespace) -> int:
    if args.geometry == "real":
        return _capture_real(args)
    from egokit.capture.bench import run_capture_benchmark

    result = run_capture_benchmark(layers=args.layers or 4, repeats=args.repeats or 7, visual_tokens=args.visual_tokens,
                                   text_tokens=args.text_tokens, seed=args.seed, memory=args.memory,
                                   warmup=2 if args.warmup is None else args.warmup)
    if args.json:
        options.emit_json(result)
    else:
        options.print_metrics(result, width=20)
    return 0


def _capture_real(args: argparse.Namespace) -> int:
    from egokit.capture.bench import run_real_benchmark

    base = {**REAL_DEFAULTS, **(REAL_QUICK if args.quick else {})}
    result = run_real_benchmark(
        names=args.family, scales=args.scales or base["scales"], layers=args.layers or base["layers"],
        repeats=args.repeats or base["repeats"], warmup=base["warmup"] if args.warmup is None else args.warmup,
        seed=args.seed, memory=args.memory, max_gflop=args.max_gflop, max_eager_gib=args.max_eager_gib)
    if args.json:
        options.emit_json(result)
        return 0
    for key in ("device", "gpu", "photo", "layers", "threads", "load_before", "load_after", "wall_s"):
        print(f"{key:>14}: {result[key]}")
    for name, entry in result["families"].items():
        print(f"{name}: {entry['checkpoint']} ({entry['part']}, {entry['layers']} of {entry['layers_real_model']} "
              f"layers, {entry['visual_tokens_per_image']} visual tokens per image)")
        for case in entry["cases"]:
            head = f"  {case['scale']}x: {case['seq_len']} tokens"
            if "skipped" in case:
                print(f"{head}: skipped, {case['skipped']}")
                continue
            mem = case.get("targeted_extra_over_eager_extra")
            mem_text = f", targeted extra / eager extra memory {mem:.4f}" if mem is not None else ""
            print(f"{head}: plain {case['plain_s']:.3f} s, targeted {case['targeted_s']:.3f} s "
                  f"(x{case['targeted_over_plain']:.3f}){mem_text}")
    summary = result["summary"]
    print("targets met" if summary["met"] else "targets not met: " + "; ".join(summary["misses"]))
    return 0
