"""The PixelLLM section of `egokit tour` (registered on import; `egokit tour` finds it through `egokit.commands.discover`).

To stay near a minute on a laptop CPU it measures the metrics of `egokit pixel eval` on fewer test scenes
(`TOUR_SCENES` scenes, twice as many referring expressions) and says so; the printed command runs the full
evaluation.
"""

from __future__ import annotations

from typing import Any

from egokit.tour.report import Section, TourContext, register_section

MODEL = "micro-vlm"
HEAD = "micro-pixel"
TITLE = "PixelLLM: where in the image is each generated word"
TOUR_SCENES = 30
GALLERY = 4


def pictures(loaded: Any, head: Any, seed: int) -> list[tuple[str, Any]]:
    """A gallery of localized test captions, one word's box, and a referring box."""
    from egokit.data.shapesworld import ShapesWorld
    from egokit.methods.pixel.locate import localize, refer
    from egokit.methods.pixel.targets import referring_expressions
    from egokit.viz.scene import gallery

    world = ShapesWorld(seed=0, split="test")
    scenes = [world.scene(1000 + seed * 97 + i) for i in range(GALLERY)]
    results = [localize(loaded, head, s) for s in scenes]
    tiles = [r.to_image() for r in results]
    first = results[0]
    shape = next((k for k, wd in enumerate(first.words) if wd in ("circle", "square", "triangle", "diamond",
                                                                   "hexagon", "cross")), 0)
    scene = next((s for s in scenes if referring_expressions(s)), scenes[0])
    options = referring_expressions(scene)
    expression = options[-1][0] if options else "the object"
    referral = refer(loaded, head, scene, expression)
    return [
        ("Generated captions of test scenes; every word's predicted point in the colour of the word.",
         gallery(tiles, [f"scene {s.index}" for s in scenes], cols=GALLERY)),
        (f"One word, {first.words[shape]!r}: its predicted box and point (other words' points in grey).",
         first.to_image(shape)),
        (f"Referring localisation of {expression!r}: the box is the min/max over the expression's tokens' "
         "points (grey).", referral.to_image()),
    ]


@register_section("pixel", TITLE, order=40)
def pixel_section(ctx: TourContext) -> Section:
    """Per-word points on generated captions; referring boxes; the reduced metrics."""
    from egokit.methods.pixel.evaluation import evaluate
    from egokit.methods.pixel.locate import load_head

    loaded = ctx.model(MODEL)
    head = load_head(HEAD)
    seed = ctx.seed + 1  # the recipe's settings were chosen on the validation split
    metrics = evaluate(loaded, head, seed=seed, n=TOUR_SCENES, n_refer=2 * TOUR_SCENES, progress=False)
    keep = ("word_in_box", "word_in_box_center_baseline", "word_in_box_teacher_forced", "refer_p50",
            "refer_p50_center_baseline", "refer_miou", "caption_attr_acc_with_head", "caption_attr_acc_without_head",
            "n_scenes", "n_object_words", "n_refer")
    return Section(
        key="pixel",
        title=TITLE,
        summary=(
            "A small MLP on the micro VLM's final per-token features regresses two points (a box's corners) for "
            "every word it generates; it was trained with caption cross-entropy + 0.1 × L1 on the points "
            "(PixelLLM), on a copy of the last decoder layer so the shared VLM is untouched. word_in_box is the "
            "share of object words whose point lands in their object's box; refer_p50 the share of referring "
            "expressions whose box overlaps the object's with IoU ≥ 0.5; both against a centre baseline. "
            f"The tour measures them on {TOUR_SCENES} test scenes (seed {seed}); the command below runs the full "
            "evaluation."
        ),
        images=pictures(loaded, head, seed),
        metrics={"model": MODEL, "head": HEAD, **{k: metrics[k] for k in keep}},
        commands=[f"egokit pixel eval --json --seed {seed}", "python -m egokit.recipes.train pixel"],
    )


__all__ = ["pictures", "pixel_section"]
