"""The Ego section of `egokit tour` (registered on import; `egokit tour` finds it through `egokit.commands.discover`).
Runs on the micro VLM: a held-out concept's reference view with the tokens Ego keeps next to the
baselines' choices, memory types compared as bars, and the key numbers of a small evaluation."""

from __future__ import annotations

from egokit.tour.report import Section, TourContext, register_section

MODEL = "micro-vlm"
TOUR_CONCEPTS = 8
BUDGET = 0.2
TITLE = "Ego: personal concepts as a few attention-selected visual tokens"


@register_section("ego", TITLE, order=10)
def ego_section(ctx: TourContext) -> Section:
    """Selection pictures, a memory comparison and the evaluation's key numbers."""
    import egokit.methods.ego.personalize as ego
    from egokit.data.shapesworld import ShapesWorld
    from egokit.methods.ego.evaluation import WORLD_SEED, evaluate, held_out_concepts
    from egokit.methods.ego.render import compare_picture, memories_picture

    model = ctx.model(MODEL)
    result = evaluate(model, seed=ctx.seed, n_concepts=TOUR_CONCEPTS, budget=BUDGET, progress=False)
    world = ShapesWorld(seed=WORLD_SEED, split="test")
    concept = held_out_concepts(world, ctx.seed, 1)[0]
    ref = world.reference_views(concept, 1, clutter=True)[0]
    memories = [ego.remember(model, ref, concept.name, selection=s, budget=BUDGET, seed=ctx.seed)
                for s in ("ego", "uniform", "random", "oracle")]
    query = world.concept_query(concept, "positive", 0)
    answer = ego.ask(model, memories[0], query.image, ego.format_for(model).caption, max_new_tokens=24)
    images = [
        (f"Concept {concept.name!r}, one cluttered reference view: the heatmap is the attention its description's "
         f"keywords ({' '.join(memories[0].keywords)}) pay each visual token; outlined are the {memories[0].n_tokens} "
         "tokens each rule keeps (Ego, uniform, random, ground-truth oracle).", memories_picture(memories)),
        ("Memory types side by side on held-out concepts: recognition F1, tokens and bytes per concept, seconds "
         "per answer.", compare_picture(result)),
    ]
    metrics = {
        "model": MODEL,
        "concepts": result["settings"]["concepts"],
        "budget": BUDGET,
        "selection_precision_ego": result["selection_precision"]["ego"],
        "selection_precision_uniform": result["selection_precision"]["uniform"],
        "f1_ego": result["f1"]["ego"],
        "f1_uniform": result["f1"]["uniform"],
        "f1_keywords": result["f1"]["keywords"],
        "f1_all_tokens": result["f1"]["all_tokens"],
        "multi_concept_f1_ego": result["multi_concept_f1"]["ego"],
        "video_f1_ego": result["video_f1"]["ego"],
        "memory_tokens_ego": result["memory_tokens"]["ego"],
        "memory_tokens_all": result["memory_tokens"]["all_tokens"],
        "add_concept_s": result["add_concept_s"],
        "personalized_caption_name_rate": result["personalized_caption_name_rate"],
        "example_caption": answer.text,
    }
    return Section(
        key="ego",
        title=TITLE,
        summary=("Ego remembers a personal concept as the few visual tokens its description's keywords attend "
                 "to, then recognises and names it from those tokens alone, with no training step. The tokens "
                 "it keeps sit on the concept (not on the clutter beside it), and recognition with a fifth of "
                 "the tokens stays close to a whole-image memory."),
        images=images,
        metrics=metrics,
        commands=[f"egokit ego eval --json --seed {ctx.seed} --concepts 16 --budget {BUDGET}",
                  "egokit ego remember REFERENCE.png NAME --bank my.bank",
                  "egokit ego ask QUERY.png \"is NAME in this image ?\" --bank my.bank"],
    )
