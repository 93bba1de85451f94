"""`egokit misalign score|eval`: which caption words the image contradicts (CLIP4DM), from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from egokit.commands import options
from egokit.commands.registry import command
from egokit.errors import InputError

if TYPE_CHECKING:
    from egokit.methods.misalign import MisalignmentResult


def summary_lines(result: MisalignmentResult, out: str | None = None) -> list[str]:
    """A few human-readable lines: each word with its score (flagged ones marked), then the scores."""
    flagged = set(result.flagged)
    width = max((len(w) for w in result.words), default=4)
    lines = [f"caption: {result.caption}"]
    for i, (w, s) in enumerate(zip(result.words, result.scores.tolist())):
        mark = "  <- misaligned" if i in flagged else ""
        if i == result.most_negative:
            mark += "  (most negative)"
        lines.append(f"  {w:<{width}}  {s:+.3e}{mark}")
    phrases = ", ".join(repr(p["text"]) for p in result.phrases) or "none"
    lines.append(f"flagged at eps={result.eps:.3g}: {phrases}")
    lines.append(f"similarity={result.similarity:.4f}  CLIPScore={result.clipscore:.4f}  "
                 f"F-CLIPScore={result.fclipscore:.4g}")
    if result.dropped_words:
        lines.append(f"dropped (too long): {' '.join(result.dropped_words)}")
    if out:
        lines.append(f"picture written to {out}")
    return lines


def write_picture(result: MisalignmentResult, path: Path, word: str | None = None) -> Path:
    """Write `result.to_image(word)` as PNG (atomically). `word` is a word of the caption or its index."""
    choice: int | str | None = word
    if word is not None and word.lstrip("-").isdigit() and word not in result.words:
        choice = int(word)
    if path.suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file, got {path}")
    if not path.parent.exists():
        raise InputError(f"the folder {path.parent} does not exist; create it or choose another --out")
    from egokit.files import write_bytes_atomic
    from egokit.viz.png import to_png_bytes

    return write_bytes_atomic(path, to_png_bytes(result.to_image(choice)))



@command("misalign", "CLIP4DM: which caption words do not match the image", actions=True, order=20)
def misalign_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("score", help="per-word misalignment of a caption against an image")
    q.add_argument("image", help="image file")
    q.add_argument("caption", help="the caption to check (quote it)")
    options.model(q, "micro-clip", "a CLIP/SigLIP")
    options.device(q)
    q.add_argument("--layers", type=int, default=None,
                   help="last text layers to attribute (default: the model's calibrated number, else 3)")
    q.add_argument("--eps", type=float, default=None, help="flag words scoring below this (default: calibrated)")
    q.add_argument("--variant", default="signed",
                   choices=["signed", "clamped", "positive_only", "chefer", "captum"])
    q.add_argument("--template", default=None, help='text before the caption (default: "A photo depicts ")')
    q.add_argument("--truncate", action="store_true", help="cut an over-long caption instead of failing")
    q.add_argument("--out", default=None, help="write a PNG: the image with a word's heatmap over the caption")
    q.add_argument("--word", default=None, help="the word whose heatmap --out shows (default: most negative)")
    options.json_flag(q)
    q.set_defaults(func=_score)
    q = actions.add_parser("eval", help="localisation accuracy, AP and speed on ShapesWorld foils (test split)")
    options.model(q, "micro-clip", "a CLIP/SigLIP")
    options.device(q)
    options.seed(q, help="ShapesWorld seed (test split; ε from the val split)")
    q.add_argument("--n", type=int, default=200, help="scenes (foil pairs and multi-error captions)")
    q.add_argument("--eps", type=float, default=None, help="use this eps instead of calibrating it")
    q.add_argument("--layers", type=int, default=None,
                   help="last text layers to attribute (default: calibrated on the validation split)")
    q.add_argument("--no-captum", action="store_true", help="skip the (slower) captum baseline")
    options.threads(q, default=None)
    options.json_flag(q)
    q.set_defaults(func=_eval)


def _score(args: argparse.Namespace) -> int:
    from egokit import load
    from egokit.data.images import load_image
    from egokit.methods.misalign import check_caption, score

    check_caption(args.caption)  # fail on bad input before loading any weights
    image = load_image(args.image)
    result = score(load(args.model, device=args.device), image, args.caption, layers=args.layers,
                   eps=args.eps, variant=args.variant, template=args.template, heatmaps=args.out is not None,
                   truncate=args.truncate)
    if args.out:
        write_picture(result, Path(args.out), args.word)
    if args.json:
        options.emit_json(result.to_dict())
    else:
        print("\n".join(summary_lines(result, args.out)))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from egokit import load
    from egokit.methods.misalign.evaluation import evaluate

    options.set_threads(args.threads)
    metrics = evaluate(load(args.model, device=args.device), seed=args.seed, n=args.n, eps=args.eps,
                       layers=args.layers, captum=not args.no_captum)
    if args.json:
        options.emit_json(metrics)
    else:
        options.print_metrics(metrics)
    return 0


__all__ = ["summary_lines", "write_picture"]
