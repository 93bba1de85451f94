"""The misalignment method (CLIP4DM) from the command line and in the tour: `egokit misalign score|eval`
(which caption words the image contradicts; the evaluation on ShapesWorld foils) and the misalignment
section of `egokit tour` (registered on import; runs on the micro CLIP in a few seconds on a CPU)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from egokit.commands import options
from egokit.commands.registry import command
from egokit.errors import InputError
from egokit.tour.report import Headline, Section, TourContext, register_section

if TYPE_CHECKING:
    from egokit.methods.misalign import MisalignmentResult

#: the micro zoo CLIP the commands and the tour run on by default (the method's `DEFAULT_MODEL`)
DEFAULT_MODEL = "micro-clip"


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


# ------------------------------------------------------------------------------------------ commands


@command("misalign", "CLIP4DM: which caption words do not match the image", actions=True, order=20)
def misalign_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("score", help="per-word misalignment of a caption against an image")
    q.add_argument("image", help="image file")
    q.add_argument("caption", help="the caption to check (quote it)")
    options.model(q, DEFAULT_MODEL, "a CLIP/SigLIP")
    options.device(q)
    q.add_argument("--layers", type=options.count(), default=None,
                   help="last text layers to attribute (default: the model's calibrated number, else 3)")
    q.add_argument("--eps", type=options.number, default=None, help="flag words scoring below this (default: calibrated; write a negative one in "
                        "exponent form as --eps=-7.35e-4)")
    q.add_argument("--variant", default="signed",
                   choices=["signed", "clamped", "positive_only", "chefer", "captum"])
    q.add_argument("--template", default=None, help='text before the caption (default: "A photo depicts ")')
    q.add_argument("--truncate", action="store_true", help="cut an over-long caption instead of failing")
    q.add_argument("--out", default=None, type=options.output_file(".png"), help="write a PNG: the image with a word's heatmap over the caption")
    q.add_argument("--word", default=None, help="the word whose heatmap --out shows (default: most negative)")
    options.json_flag(q)
    q.set_defaults(func=_score)
    q = actions.add_parser("eval", help="localisation accuracy, AP and speed on ShapesWorld foils (test split)")
    options.model(q, DEFAULT_MODEL, "a CLIP/SigLIP")
    options.device(q)
    options.seed(q, help="ShapesWorld seed (test split; ε from the val split)")
    q.add_argument("--n", type=options.count(), default=200, help="scenes (foil pairs and multi-error captions)")
    q.add_argument("--eps", type=options.number, default=None,
                   help="use this eps instead of calibrating it (a negative one in exponent form: --eps=-7.35e-4)")
    q.add_argument("--layers", type=options.count(), default=None,
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
    from egokit.methods.misalign import evaluate

    options.set_threads(args.threads)
    evaluation = evaluate(load(args.model, device=args.device), seed=args.seed, n=args.n, eps=args.eps,
                          layers=args.layers, captum=not args.no_captum)
    metrics = evaluation.metrics()
    if args.json:
        options.emit_json(metrics)
    else:
        options.print_metrics(metrics)
    return 0


# ------------------------------------------------------------------------------------------ tour

TOUR_SCENES = 40
TITLE = "Misalignment (CLIP4DM): which caption words do not match the image"


@register_section("misalign", TITLE, order=20)
def misalign_section(ctx: TourContext) -> Section:
    """A scene with its true caption and a foil, per-word scores and heatmaps, and a small evaluation."""
    import numpy as np

    from egokit.methods.misalign import average_precision, foil_set, localisation, score, score_variants
    from egokit.viz.scene import gallery

    model = ctx.model(DEFAULT_MODEL)
    data = foil_set(ctx.seed, TOUR_SCENES)
    scene, foil = data[0]
    true_r = score(model, scene.image, scene.caption)
    foil_r = score(model, scene.image, foil.caption)
    clamped_r = score(model, scene.image, foil.caption, variant="clamped", heatmaps=False)
    picture = gallery(
        [true_r.to_image(), foil_r.to_image(), clamped_r.to_image()],
        ["true caption", f"foil: {foil.original!r} -> {foil.replacement!r}", "same foil, clamped (Chefer ReLU)"],
        cols=3, tile=320,
    )
    res = score_variants(model, [s.image for s, _ in data] * 2,
                         [f.caption for _, f in data] + [s.caption for s, _ in data],
                         variants=("signed", "clamped"), keep_image=False)
    n = len(data)
    targets = [f.index for _, f in data]
    labels = [1] * n + [0] * n
    metrics = {
        "model": DEFAULT_MODEL,
        "scenes": n,
        "la": float(np.mean(localisation(res["signed"][:n], targets))),
        "la_clamped": float(np.mean(localisation(res["clamped"][:n], targets))),
        "chance_la": float(np.mean([1.0 / max(1, sum(r.eligible)) for r in res["signed"][:n]])),
        "ap_fclipscore": average_precision(labels, [-r.fclipscore for r in res["signed"]]),
        "ap_clipscore": average_precision(labels, [-r.clipscore for r in res["signed"]]),
        "layers": res["signed"][0].layers,
        "eps": res["signed"][0].eps,
        "example_flagged": foil_r.flagged_words,
        "example_foil_word": foil.replacement,
    }
    return Section(
        key="misalign",
        title=TITLE,
        summary=("Signed gradient × attention on the text encoder's end-of-text row scores every caption "
                 "word: negative words lower the image–caption similarity and are flagged as misaligned, "
                 "and F-CLIPScore adds them up. On ShapesWorld foils (one word swapped) the most negative "
                 "word is measured against the swapped one; the clamped (ReLU) variant loses that signal."),
        images=[(f"Per-word scores (red: lowers the match, blue: supports it; underlined: flagged) and "
                 f"where the most negative word looks. Foil: {foil.caption!r}.", picture)],
        metrics=metrics,
        headline=Headline(
            method="CLIP4DM", metric="localisation accuracy of the swapped word", value=metrics["la"],
            baseline="a word at random", baseline_value=metrics["chance_la"],
            paper="FOIL LA 0.84 (ViT-H/14), 0.73 (ViT-B/32)",
            rule="at least twice chance", shows=metrics["la"] >= 2 * metrics["chance_la"]),
        commands=[
            f"egokit misalign eval --json --seed {ctx.seed} --n 200",
            f"egokit misalign score scene.png \"{foil.caption}\" --out heat.png",
        ],
    )


__all__ = ["misalign_section", "summary_lines", "write_picture"]
