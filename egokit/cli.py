"""The `egokit` command line.

Every sub-command is a small function that imports what it needs lazily, so `egokit --help` is instant.
Errors the kit raises on purpose (`EgokitError`) are printed as one line with a non-zero exit code; an
unexpected error is printed as one line too, with a hint to re-run with `--debug` for the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from egokit.errors import EgokitError

Handler = Callable[[argparse.Namespace], int | None]


def emit_json(obj: Any) -> None:
    """Print a JSON document to stdout (used by every `--json` flag)."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---------------------------------------------------------------------------------------------- handlers


def _cmd_tour(args: argparse.Namespace) -> int:
    from egokit.tour import run_tour

    index = run_tour(out_dir=Path(args.out), device=args.device, seed=args.seed)
    print(f"egokit tour: report written to {index}")
    return 0


def _cmd_data_sample(args: argparse.Namespace) -> int:
    from egokit.data.export import write_samples

    out = write_samples(Path(args.out), seed=args.seed, n=args.n, size=args.size)
    print(f"egokit data sample: wrote {args.n} scenes and ground truth to {out}")
    return 0


def _cmd_bench_capture(args: argparse.Namespace) -> int:
    from egokit.capture.bench import run_capture_benchmark

    result = run_capture_benchmark(layers=args.layers, repeats=args.repeats, visual_tokens=args.visual_tokens,
                                   text_tokens=args.text_tokens, seed=args.seed)
    if args.json:
        emit_json(result)
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v}")
    return 0


def _cmd_explore(args: argparse.Namespace) -> int:
    from egokit import load
    from egokit.data.images import load_image
    from egokit.errors import InputError
    from egokit.explore import exploration_summary, explore

    if not args.prompt.strip():
        raise InputError("the prompt is empty: ask a question about the image")
    image = load_image(args.image)  # fail on a bad image before loading any weights
    result = explore(load(args.model, device=args.device), image, args.prompt, max_new_tokens=args.max_new_tokens)
    token = args.word
    if args.out:
        from egokit.files import write_bytes_atomic
        from egokit.viz.png import to_png_bytes

        write_bytes_atomic(Path(args.out), to_png_bytes(result.to_image(token)))
    if args.json:
        emit_json(result.to_dict())
    else:
        print("\n".join(exploration_summary(result)))
        if args.out:
            print(f"picture written to {args.out}")
    return 0

# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="egokit",
        description="Look inside vision-language models: attention, gradients, and five research methods.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tour", help="run every method on the micro zoo and write an HTML report")
    p.add_argument("--out", default="egokit-report", help="folder for index.html and metrics.json")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_tour)

    p = sub.add_parser("data", help="ShapesWorld data with ground truth")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    q = dsub.add_parser("sample", help="write N scenes as PNG files plus one JSON file of ground truth")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--n", type=int, default=8)
    q.add_argument("--size", type=int, default=64, help="image side in pixels")
    q.add_argument("--out", required=True, help="output folder")
    q.set_defaults(func=_cmd_data_sample)

    p = sub.add_parser("bench", help="benchmarks with JSON output")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT")
    q = bsub.add_parser("capture", help="plain vs targeted capture vs eager output_attentions")
    q.add_argument("--layers", type=int, default=4, help="language-model layers (24 in the real model)")
    q.add_argument("--repeats", type=int, default=5)
    q.add_argument("--visual-tokens", type=int, default=730)
    q.add_argument("--text-tokens", type=int, default=60)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_bench_capture)


    p = sub.add_parser("explore", help="where each generated word looks: attention, rollout, gradient x attention")
    p.add_argument("image", help="image file")
    p.add_argument("prompt", help="the question or instruction (quote it)")
    p.add_argument("--model", default="micro-vlm", help="micro zoo name, local folder or hub id of a VLM")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--word", default=None, help="the generated word to picture (default: the first content word)")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--out", default=None, help="write a PNG strip: image, attention, rollout, gradient")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_explore)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        # `egokit` or `egokit data` with no action: show the relevant help.
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    debug = args.debug or os.environ.get("EGOKIT_DEBUG") == "1"
    try:
        code = func(args)
    except EgokitError as e:
        if debug:
            raise
        print(f"egokit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("egokit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI never shows a raw traceback
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"egokit: unexpected error ({type(e).__name__}: {first}); re-run with --debug for details",
              file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
