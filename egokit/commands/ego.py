"""`egokit ego eval|remember|ask`: Ego's personal concepts from the command line, and Ego's section of
`egokit tour` (both registered on import; `egokit.commands.discover` imports this module).

The tour section runs on the micro VLM: a held-out concept's reference view with the tokens Ego keeps
next to the baselines' choices, memory types compared as bars, and the key numbers of a small evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egokit.commands import options
from egokit.commands.registry import command
from egokit.tour.report import Headline, Section, TourContext, register_section

if TYPE_CHECKING:
    from egokit.methods.ego import EgoEvaluation

MODEL = "micro-vlm"
TOUR_CONCEPTS = 8
BUDGET = 0.2
TITLE = "Ego: personal concepts as a few attention-selected visual tokens"


def run_eval(args: argparse.Namespace) -> EgoEvaluation:
    from egokit import load
    from egokit.methods.ego import evaluate

    model = load(args.model, device=args.device)
    return evaluate(model, seed=args.seed, n_concepts=args.concepts, budget=args.budget,
                    threads=args.threads or None)


def _bank(path: Path, model: Any) -> Any:
    from egokit.methods.ego import MemoryBank

    if path.exists():
        return MemoryBank.load(path, model=model)
    return MemoryBank(fingerprint=model.fingerprint(), model_name=model.name)


def run_remember(args: argparse.Namespace) -> dict[str, Any]:
    from egokit import load
    from egokit.files import write_bytes_atomic
    from egokit.methods.ego import MemoryBank, remember
    from egokit.viz.png import to_png_bytes

    model = load(args.model, device=args.device)
    bank_path = Path(args.bank).expanduser()
    _bank(bank_path, model)  # a bank made for another model fails here, before any work
    memory = remember(model, list(args.images), args.name, budget=args.budget, selection=args.selection,
                      keywords=args.keywords, dynamic_budget=args.dynamic)
    # read-modify-write under the bank's lock: concurrent runs on one bank keep every concept
    bank = MemoryBank.update(bank_path, model, lambda b: b.add(memory))
    if args.out:
        write_bytes_atomic(Path(args.out), to_png_bytes(memory.to_image()))
    return {"bank": str(bank_path), "concepts": bank.names, "memory": memory.to_dict()}


def run_ask(args: argparse.Namespace) -> dict[str, Any]:
    from egokit import load
    from egokit.errors import InputError
    from egokit.methods.ego import MemoryBank, ask

    model = load(args.model, device=args.device)
    bank_path = Path(args.bank).expanduser()
    if not bank_path.exists():
        raise InputError(f"no memory bank at {bank_path}: create one with `egokit ego remember IMAGE NAME --bank FILE`")
    bank = MemoryBank.load(bank_path, model=model)
    frames = list(args.images)
    answer = ask(model, bank, frames if len(frames) > 1 else frames[0], args.question,
                 max_new_tokens=args.max_new_tokens)
    return answer.to_dict()


def summary_lines(result: EgoEvaluation | dict[str, Any]) -> list[str]:
    """Plain-text output of `egokit ego eval` (without --json): the evaluation document, one line per entry."""
    document = result if isinstance(result, dict) else result.to_dict()
    lines = []
    for key, value in document.items():
        if key in ("caption_examples", "per_kind"):
            continue
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items())
            lines.append(f"{key:>32}: {inner}")
        else:
            lines.append(f"{key:>32}: {value}")
    return lines


@command("ego", "Ego: personal concepts as a few attention-selected visual tokens", actions=True, order=10)
def ego_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("eval", help="Ego vs its baselines on held-out ShapesWorld concepts (F1, precision, size, speed)")
    options.model(q, MODEL, "a VLM")
    options.device(q)
    options.seed(q, help="which held-out concepts, names and query scenes")
    q.add_argument("--concepts", type=options.count(), default=16, help="held-out concepts to evaluate")
    q.add_argument("--budget", type=options.budget, default=0.2,
                   help="tokens kept per view: a share in (0, 1] (0.2) or a count (13)")
    options.threads(q)
    options.json_flag(q)
    q.set_defaults(func=_eval)
    q = actions.add_parser("remember", help="add a concept (from reference images) to a memory bank file")
    q.add_argument("images", nargs="+", help="reference image file(s) of the concept")
    q.add_argument("name", help="the concept's name (one word)")
    q.add_argument("--bank", required=True, help="memory bank file (created if missing)")
    options.model(q, MODEL, "a VLM")
    options.device(q)
    q.add_argument("--budget", type=options.budget, default=0.2, help="tokens kept per view: a share or a count")
    q.add_argument("--selection", default="ego", choices=["ego", "uniform", "random", "all", "keywords"])
    q.add_argument("--keywords", type=options.words, default=None,
                   help="use these words instead of the model's description (quote them; not empty)")
    q.add_argument("--dynamic", action="store_true", help="budget from the model's coverage answer (capped)")
    q.add_argument("--out", default=None, type=options.output_file(".png"), help="write a PNG of the kept tokens on each view")
    options.json_flag(q)
    q.set_defaults(func=_remember)
    q = actions.add_parser("ask", help="ask about an image (or frames) with a memory bank's concepts in context")
    q.add_argument("images", nargs="+", help="image file, or several video frames")
    q.add_argument("question", help="the question (quote it)")
    q.add_argument("--bank", required=True, help="memory bank file written by `egokit ego remember`")
    options.model(q, MODEL, "a VLM")
    options.device(q)
    q.add_argument("--max-new-tokens", type=options.count(), default=24)
    options.json_flag(q)
    q.set_defaults(func=_ask)


def _eval(args: argparse.Namespace) -> int:
    result = run_eval(args)
    if args.json:
        options.emit_json(result.metrics())
    else:
        print("\n".join(summary_lines(result)))
    return 0


def _remember(args: argparse.Namespace) -> int:
    out = run_remember(args)
    if args.json:
        options.emit_json(out)
    else:
        m = out["memory"]
        print(f"remembered {m['name']!r}: {m['tokens']} tokens ({m['bytes']} bytes), keywords: "
              f"{' '.join(m['keywords'])}; bank {out['bank']} holds {', '.join(out['concepts'])}")
    return 0


def _ask(args: argparse.Namespace) -> int:
    out = run_ask(args)
    if args.json:
        options.emit_json(out)
    else:
        print(out["text"])
    return 0


# ---------------------------------------------------------------------------------------------- tour


@register_section("ego", TITLE, order=10)
def ego_section(ctx: TourContext) -> Section:
    """Selection pictures, a memory comparison and the evaluation's key numbers."""
    import egokit.methods.ego as ego
    from egokit.data.shapesworld import ShapesWorld
    from egokit.methods.ego.evaluation import WORLD_SEED

    model = ctx.model(MODEL)
    result = ego.evaluate(model, seed=ctx.seed, n_concepts=TOUR_CONCEPTS, budget=BUDGET, progress=False).to_dict()
    world = ShapesWorld(seed=WORLD_SEED, split="test")
    concept = ego.held_out_concepts(world, ctx.seed, 1)[0]
    ref = world.reference_views(concept, 1, clutter=True)[0]
    memories = [ego.remember(model, ref, concept.name, selection=s, budget=BUDGET, seed=ctx.seed)
                for s in ("ego", "uniform", "random", "oracle")]
    query = world.concept_query(concept, "positive", 0)
    answer = ego.ask(model, memories[0], query.image, ego.format_for(model).caption, max_new_tokens=24)
    images = [
        (f"Concept {concept.name!r}, one cluttered reference view: the heatmap is the attention its description's "
         f"keywords ({' '.join(memories[0].keywords)}) pay each visual token; outlined are the {memories[0].n_tokens} "
         "tokens each rule keeps (Ego, uniform, random, ground-truth oracle).", ego.memories_picture(memories)),
        ("Memory types side by side on held-out concepts: recognition F1, tokens and bytes per concept, seconds "
         "per answer.", ego.compare_picture(result)),
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
                 "to, then recognises it from those tokens alone, with no training step. The tokens "
                 "it keeps sit on the concept (not on the clutter beside it), and recognition with a fifth of "
                 "the tokens stays close to a whole-image memory."),
        images=images,
        metrics=metrics,
        headline=Headline(
            method="Ego", metric=f"recognition F1, {BUDGET:.0%} of tokens", value=metrics["f1_ego"],
            baseline="evenly spaced tokens", baseline_value=metrics["f1_uniform"],
            paper="Yo'LLaVA F1 80.4 vs uniform 77.7 at 20 % (InternVL3-14B)",
            rule="F1 above evenly spaced tokens", shows=metrics["f1_ego"] > metrics["f1_uniform"]),
        commands=[f"egokit ego eval --json --seed {ctx.seed} --concepts 16 --budget {BUDGET}",
                  "egokit ego remember REFERENCE.png NAME --bank my.bank",
                  "egokit ego ask QUERY.png \"is NAME in this image ?\" --bank my.bank"],
    )


__all__ = ["ego_section", "run_ask", "run_eval", "run_remember", "summary_lines"]
