"""`egokit pixel ...`: where each generated word is (PixelLLM's point head) from the command line.

    egokit pixel localize scene.png --out words.png          # caption + a point and box per word
    egokit pixel refer scene.png "the red circle" --json     # the referred box
    egokit pixel eval --json --seed 1                        # metrics on ShapesWorld's test split

Imports nothing heavy until a command runs, so `egokit --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from egokit.commands import options
from egokit.commands.registry import command

DEFAULT_MODEL = "micro-vlm"
DEFAULT_HEAD = "micro-pixel"


@command("pixel", "PixelLLM: a point and box for every generated word; referring boxes", actions=True, order=40)
def pixel_commands(psub: argparse._SubParsersAction) -> None:
    """`pixel localize|refer|eval`."""

    q = psub.add_parser("localize", help="caption an image and locate every word")
    q.add_argument("image", help="image file")
    q.add_argument("--prompt", default="describe the image .", help="what to ask (default: a caption)")
    _common(q)
    q.add_argument("--word", default=None, help="with --out: draw this word's box (default: every word's point)")
    q.add_argument("--out", default=None, help="write a PNG of the words' points over the image")
    q.set_defaults(func=_cmd_localize)

    q = psub.add_parser("refer", help="the box of a referring expression (e.g. 'the red circle')")
    q.add_argument("image", help="image file")
    q.add_argument("expression", help="the expression (quote it)")
    _common(q)
    q.add_argument("--out", default=None, help="write a PNG of the box over the image")
    q.set_defaults(func=_cmd_refer)

    q = psub.add_parser("eval", help="word_in_box, refer_p50 and caption accuracy on ShapesWorld's test split")
    _common(q)
    options.seed(q, help="which test scenes")
    q.add_argument("--n", type=int, default=150, help="test scenes for the caption metrics")
    q.add_argument("--n-refer", type=int, default=None, help="referring expressions (default: 2 × n)")
    options.threads(q, default=2)
    q.set_defaults(func=_cmd_eval)


def _common(q: argparse.ArgumentParser) -> None:
    options.model(q, DEFAULT_MODEL, "a VLM")
    q.add_argument("--head", default=DEFAULT_HEAD, help="point head: zoo name or folder")
    options.device(q)
    options.json_flag(q)


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from egokit import load
    from egokit.methods.pixel.locate import load_head

    head = load_head(args.head)  # fail on a missing head before loading the model
    return load(args.model, device=args.device), head


def _write(result: Any, out: str | None, word: str | None = None) -> None:
    if out:
        from egokit.files import write_bytes_atomic
        from egokit.viz.png import to_png_bytes

        write_bytes_atomic(Path(out), to_png_bytes(result.to_image(word)))


def _cmd_localize(args: argparse.Namespace) -> int:
    from egokit.data.images import load_image
    from egokit.methods.pixel.locate import localize

    image = load_image(args.image)
    loaded, head = _load(args)
    result = localize(loaded, head, image, prompt=args.prompt)
    _write(result, args.out, args.word)
    if args.json:
        options.emit_json(result.to_dict())
    else:
        print(result.answer)
        for w, (x, y), b in zip(result.words, result.word_points.tolist(), result.word_boxes.tolist()):
            print(f"{w:>12}  point ({x:6.1f}, {y:6.1f})  box ({b[0]:.1f}, {b[1]:.1f}, {b[2]:.1f}, {b[3]:.1f})")
        if args.out:
            print(f"picture written to {args.out}")
    return 0


def _cmd_refer(args: argparse.Namespace) -> int:
    from egokit.data.images import load_image
    from egokit.methods.pixel.locate import refer

    image = load_image(args.image)
    loaded, head = _load(args)
    result = refer(loaded, head, image, args.expression)
    _write(result, args.out)
    if args.json:
        options.emit_json(result.to_dict())
    else:
        x0, y0, x1, y1 = result.box
        print(f"{result.answer!r}: box ({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f})")
        if args.out:
            print(f"picture written to {args.out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from egokit.methods.pixel.evaluation import evaluate

    options.set_threads(args.threads)
    loaded, head = _load(args)
    metrics = evaluate(loaded, head, seed=args.seed, n=args.n, n_refer=args.n_refer)
    if args.json:
        options.emit_json(metrics)
    else:
        options.print_metrics(metrics, width=32)
    return 0
