"""`egokit pixel ...`: where each generated word is (PixelLLM's point head) from the command line, and the
PixelLLM section of `egokit tour`.

    egokit pixel localize scene.png --out words.png          # caption + a point and box per word
    egokit pixel refer scene.png "the red circle" --json     # the referred box
    egokit pixel eval --json --seed 1                        # metrics on ShapesWorld's test split

Imports nothing heavy until a command runs, so `egokit --help` stays fast. The tour section measures the
metrics of `egokit pixel eval` on fewer test scenes (`TOUR_SCENES` scenes, twice as many referring
expressions), to stay near a minute on a laptop CPU, and says so; its printed command runs the full evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from egokit.commands import options
from egokit.commands.registry import command
from egokit.tour.report import Headline, Section, TourContext, register_section

#: the micro zoo VLM and point head the commands and the tour run on by default (the method's
#: `DEFAULT_MODEL` and `DEFAULT_HEAD`)
DEFAULT_MODEL = "micro-vlm"
DEFAULT_HEAD = "micro-pixel"
TITLE = "PixelLLM: where in the image is each generated word"
TOUR_SCENES = 30
GALLERY = 4


@command("pixel", "PixelLLM: a point and box for every generated word; referring boxes", actions=True, order=40)
def pixel_commands(psub: argparse._SubParsersAction) -> None:
    """`pixel localize|refer|eval`."""

    q = psub.add_parser("localize", help="caption an image and locate every word")
    q.add_argument("image", help="image file")
    q.add_argument("--prompt", default="describe the image .", help="what to ask (default: a caption)")
    _common(q)
    q.add_argument("--word", default=None, help="with --out: draw this word's box (default: every word's point)")
    q.add_argument("--out", default=None, type=options.output_file(".png"), help="write a PNG of the words' points over the image")
    q.set_defaults(func=_cmd_localize)

    q = psub.add_parser("refer", help="the box of a referring expression (e.g. 'the red circle')")
    q.add_argument("image", help="image file")
    q.add_argument("expression", help="the expression (quote it)")
    _common(q)
    q.add_argument("--readout", default="last_token", choices=["last_token", "answer_position"],
                   help="where the box is read: the expression's last token (PixelLLM's rule, default) or the "
                        "answer position (not the paper's rule)")
    q.add_argument("--out", default=None, type=options.output_file(".png"), help="write a PNG of the box over the image")
    q.set_defaults(func=_cmd_refer)

    q = psub.add_parser("eval", help="word_in_box, refer_p50 and caption accuracy on ShapesWorld's test split")
    _common(q)
    options.seed(q, help="which test scenes")
    q.add_argument("--n", type=options.count(), default=150, help="test scenes for the caption metrics")
    q.add_argument("--n-refer", type=options.count(), default=None, help="referring expressions (default: 2 × n)")
    options.threads(q, default=2)
    q.set_defaults(func=_cmd_eval)


def _common(q: argparse.ArgumentParser) -> None:
    options.model(q, DEFAULT_MODEL, "a VLM")
    q.add_argument("--head", default=DEFAULT_HEAD, help="point head: zoo name or folder")
    options.device(q)
    options.json_flag(q)


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from egokit import load
    from egokit.methods.pixel import load_head

    head = load_head(args.head)  # fail on a missing head before loading the model
    return load(args.model, device=args.device), head


def _write(result: Any, out: str | None, word: str | None = None) -> None:
    if out:
        from egokit.files import write_bytes_atomic
        from egokit.viz.png import to_png_bytes

        write_bytes_atomic(Path(out), to_png_bytes(result.to_image(word)))


def _cmd_localize(args: argparse.Namespace) -> int:
    from egokit.data.images import load_image
    from egokit.methods.pixel import localize

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
    from egokit.methods.pixel import refer

    image = load_image(args.image)
    loaded, head = _load(args)
    result = refer(loaded, head, image, args.expression, readout=args.readout)
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
    from egokit.methods.pixel import evaluate

    options.set_threads(args.threads)
    loaded, head = _load(args)
    metrics = evaluate(loaded, head, seed=args.seed, n=args.n, n_refer=args.n_refer).metrics()
    if args.json:
        options.emit_json(metrics)
    else:
        options.print_metrics(metrics, width=32)
    return 0


# ---------------------------------------------------------------------------------------------- the tour


def pictures(loaded: Any, head: Any, seed: int) -> list[tuple[str, Any]]:
    """A gallery of localized test captions, one word's box, and a referring box."""
    from egokit.data.shapesworld import ShapesWorld
    from egokit.methods.pixel import localize, refer, referring_expressions
    from egokit.viz.scene import gallery

    world = ShapesWorld(seed=0, split="test")
    scenes = [world.scene(1000 + seed * 97 + i) for i in range(GALLERY)]
    results = [localize(loaded, head, s) for s in scenes]
    tiles = [r.to_image() for r in results]
    first = results[0]
    shape = next((k for k, wd in enumerate(first.words) if wd in ("circle", "square", "triangle", "diamond",
                                                                   "hexagon", "cross")), 0)
    scene = next((s for s in scenes if referring_expressions(s)), scenes[0])
    found = referring_expressions(scene)
    expression = found[-1][0] if found else "the object"
    referral = refer(loaded, head, scene, expression)
    return [
        ("Generated captions of test scenes; every word's predicted point in the colour of the word.",
         gallery(tiles, [f"scene {s.index}" for s in scenes], cols=GALLERY)),
        (f"One word, {first.words[shape]!r}: its predicted box and point (other words' points in grey).",
         first.to_image(shape)),
        (f"Referring localisation of {expression!r}: the box is the two corners the head predicts at the "
         "expression's last token (PixelLLM's rule); the other tokens' points in grey.", referral.to_image()),
    ]


@register_section("pixel", TITLE, order=40)
def pixel_section(ctx: TourContext) -> Section:
    """Per-word points on generated captions; referring boxes; the reduced metrics."""
    from egokit.methods.pixel import evaluate, load_head

    loaded = ctx.model(DEFAULT_MODEL)
    head = load_head(DEFAULT_HEAD)
    seed = ctx.seed + 1  # the recipe's settings were chosen on the validation split
    metrics = evaluate(loaded, head, seed=seed, n=TOUR_SCENES, n_refer=2 * TOUR_SCENES, progress=False).metrics()
    keep = ("word_in_box", "word_in_box_center_baseline", "word_in_box_teacher_forced", "refer_p50",
            "refer_p50_center_baseline", "refer_miou", "refer_p50_answer_position", "caption_attr_acc_with_head",
            "caption_attr_acc_without_head",
            "n_scenes", "n_object_words", "n_refer")
    return Section(
        key="pixel",
        title=TITLE,
        summary=(
            "A small MLP on the micro VLM's final per-token features regresses two points (a box's corners) for "
            "every word it generates; it was trained with caption cross-entropy + 0.1 × L1 on the points in "
            "pixels (PixelLLM), on copies of every decoder layer so the shared VLM is untouched. word_in_box is "
            "the share of object words whose point lands in their object's box; refer_p50 the share of referring "
            "expressions whose box (the two corners at the expression's last token, the paper's rule) overlaps "
            "the object's with IoU ≥ 0.5; both against a centre baseline. "
            f"The tour measures them on {TOUR_SCENES} test scenes (seed {seed}); the command below runs the full "
            "evaluation."
        ),
        images=pictures(loaded, head, seed),
        metrics={"model": DEFAULT_MODEL, "head": DEFAULT_HEAD, **{k: metrics[k] for k in keep}},
        headline=Headline(
            method="PixelLLM", metric="referring boxes with IoU ≥ 0.5", value=metrics["refer_p50"],
            baseline="a centred box", baseline_value=metrics["refer_p50_center_baseline"],
            paper="RefCOCO val P@0.5 89.6–90.3",
            rule="0.2 or more above the centred box",
            shows=metrics["refer_p50"] >= metrics["refer_p50_center_baseline"] + 0.2),
        commands=[f"egokit pixel eval --json --seed {seed}", "python -m egokit.recipes.train pixel"],
    )


__all__ = ["DEFAULT_HEAD", "DEFAULT_MODEL", "GALLERY", "TITLE", "TOUR_SCENES", "pictures", "pixel_commands",
           "pixel_section"]
