"""The misalignment section of `egokit tour` (registered on import; `egokit tour` finds it through `egokit.commands.discover`). Runs on the micro CLIP in a few seconds on a CPU."""

from __future__ import annotations

import numpy as np

from egokit.tour.report import Section, TourContext, register_section

MODEL = "micro-clip"
TOUR_SCENES = 40
TITLE = "Misalignment (CLIP4DM): which caption words do not match the image"


@register_section("misalign", TITLE, order=20)
def misalign_section(ctx: TourContext) -> Section:
    """A scene with its true caption and a foil, per-word scores and heatmaps, and a small evaluation."""
    from egokit.methods.misalign.evaluation import average_precision, foil_set, localisation
    from egokit.methods.misalign.scoring import score, score_variants
    from egokit.viz.scene import gallery

    model = ctx.model(MODEL)
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
        "model": MODEL,
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
        commands=[
            f"egokit misalign eval --json --seed {ctx.seed} --n 200",
            f"egokit misalign score scene.png \"{foil.caption}\" --out heat.png",
        ],
    )


__all__ = ["misalign_section"]
