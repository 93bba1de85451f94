"""`egokit ego eval`: Ego against its baselines on held-out ShapesWorld concepts.

Data: the test partition of concept identities of the ShapesWorld the model was trained on
(`world_seed`, default the zoo's), never seen in training. `seed` picks which concepts, their names and
which query scenes. Each concept has one cluttered reference view (the concept with 1–2 companion
objects, which a whole-image memory carries along) and queries: positives (the concept moved and
rescaled among distractors), hard negatives (same shape and colours, another mark) and distractor-only
scenes (a companion from the reference view without the concept).

Reported (JSON):
- `selection_precision.{ego,uniform,random,oracle}`: how much of the kept tokens lies inside the subject's
  mask (the share of the kept patches' pixels that are the subject; the oracle is the best any K can do).
- `f1.{ego,uniform,random,keywords,all_tokens,oracle,ego_dynamic}`: recognition F1 ("is <n> in this
  image ?", yes when P(yes) > 0.5), one concept in memory, equal budget (`budget` share of the tokens
  per view; `ego_dynamic` uses the model's coverage answer, capped by the budget).
- `multi_concept_f1.{ego,all_tokens}`: 2–3 concepts in memory; scenes hold 0, 1 or 2 of them; every
  concept in memory is asked about.
- `video_f1.{ego,all_tokens}`: 4-frame videos with the concept in some frames vs videos of a hard
  negative; asked per frame (`PromptFormat.video`), yes if any frame says yes.
- `memory_tokens`, `memory_bytes` per concept; `add_concept_s` (median seconds of `remember`, Ego);
  `answer_s` (median seconds of one `ask`, image encoding included).
- `personalized_caption_name_rate`: share of positive scenes whose generated caption uses the name.
- `per_kind`: accuracy per query kind and memory type; `counts`, `settings`.

`evaluate` returns an `EgoEvaluation`: `to_dict()` is the nested document above, `metrics()` its flat
version (dotted names such as "f1.ego", what `egokit ego eval --json` prints). `quick_evaluate(model)`
is the smallest honest run (two concepts, a few queries) for checks.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch

import egokit.methods.ego.personalize as ego
from egokit.data.concepts import Concept, other_marks
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import NAME_POOL
from egokit.methods.ego.formats import format_for
from egokit.methods.ego.memory import ConceptMemory, MemoryBank
from egokit.methods.ego.select import mask_coverage, precision_inside
from egokit.models.context import EncodedImage, encode_image
from egokit.results import Evaluation

#: the micro zoo model Ego runs on by default
DEFAULT_MODEL = "micro-vlm"

QUERY_KINDS: dict[str, int] = {"positive": 4, "hard_negative": 2, "distractor_only": 2}
METHODS: dict[str, str] = {"ego": "ego", "uniform": "uniform", "random": "random", "keywords": "keywords",
                           "all_tokens": "all", "oracle": "oracle"}
WORLD_SEED = 0


def held_out_concepts(world: ShapesWorld, seed: int, n: int, split: str = "test") -> list[Concept]:
    """`n` concepts of a held-out partition ("test", or "val" for choosing settings), chosen and named by
    `seed` (distinct names)."""
    from egokit.data.concept_pool import split_concepts

    pool = split_concepts(world, split)
    rng = np.random.default_rng([seed, 11])
    picks = rng.permutation(len(pool))[:n]
    names = [NAME_POOL[int(k)] for k in rng.permutation(len(NAME_POOL))[:n]]
    return [replace(pool[int(p)], name=nm) for p, nm in zip(picks, names)]


def f1_score(labels: Sequence[bool], preds: Sequence[bool]) -> float:
    """F1 of the positive class (0 when nothing is predicted or present)."""
    tp = sum(1 for y, p in zip(labels, preds) if y and p)
    fp = sum(1 for y, p in zip(labels, preds) if not y and p)
    fn = sum(1 for y, p in zip(labels, preds) if y and not p)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _hard_negative_concept(c: Concept, rng: np.random.Generator) -> Concept:
    choices = other_marks(c.mark, c.mark_color)
    mark, mc = choices[int(rng.integers(len(choices)))]
    return replace(c, mark=mark, mark_color=mc, name="other")


def _personal_caption(scene: Any) -> str:
    """The personalized caption the micro VLM is trained to give (objects left to right)."""
    from egokit.data.captions import canonical_caption

    return canonical_caption(scene, personal=True)


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _round(x: Any, digits: int = 4) -> Any:
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    if isinstance(x, float):
        return round(x, digits) if np.isfinite(x) else None
    return x


@contextmanager
def cpu_threads(n: int | None, device: Any) -> Iterator[None]:
    """Run with `n` torch CPU threads (restored afterwards); no-op for None or a GPU model. Small models
    answer several times faster on one thread than on two busy cores."""
    if n is None or str(device).startswith("cuda"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested document as one flat dict: dict keys and list indices joined with dots ("f1.ego",
    "settings.layers.0"); leaves are numbers, strings, booleans or None."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
        return out
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    return {prefix: value}


class EgoEvaluation(Evaluation):
    """What `evaluate` returns: the evaluation document (module docstring) as `to_dict()` (nested, as
    `egokit ego eval` has always written it) and `metrics()` (flat, dotted names: "f1.ego")."""

    FILE_KIND: ClassVar[str] = "egokit.ego.evaluation"
    FILE_VERSION: ClassVar[int] = 1
    FILE_WHAT: ClassVar[str | None] = "Ego evaluation"

    def __init__(self, result: dict[str, Any]) -> None:
        self._result = result

    def to_dict(self) -> dict[str, Any]:
        return self._result

    def metrics(self) -> dict[str, Any]:
        return flatten(self._result)

    def _file_meta(self) -> dict[str, Any]:
        return {"result": self._result}

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> EgoEvaluation:
        return cls(dict(meta["result"]))

    def to_image(self) -> Any:
        """Memory types side by side: recognition F1, tokens and bytes per concept, seconds per answer."""
        from egokit.methods.ego.render import compare_picture

        return compare_picture(self._result)

    def __repr__(self) -> str:
        r = self._result
        return (f"EgoEvaluation(model={r.get('model')!r}, concepts={r.get('settings', {}).get('concepts')}, "
                f"f1={r.get('f1')})")


def evaluate(model: Any, seed: int = 0, n_concepts: int = 16, budget: float | int = 0.2, *,
             world_seed: int = WORLD_SEED, queries: dict[str, int] | None = None, calibrate: bool = True,
             video_frames: int = 4, captions: bool = True, timing_queries: int = 12, threads: int | None = 1,
             split: str = "test", progress: bool = True) -> EgoEvaluation:
    """Run the whole evaluation (see the module docstring); an `EgoEvaluation`.

    threads: torch CPU threads during the run (None: leave the setting alone).
    split:   "test" (the held-out concepts of record) or "val" (for choosing settings without the test set)."""
    with cpu_threads(threads, getattr(model, "device", "cpu")), torch.no_grad():
        result = _evaluate(model, seed, n_concepts, budget, world_seed, queries, calibrate, video_frames, captions,
                           timing_queries, progress, split)
    result["settings"]["threads"] = threads if not str(getattr(model, "device", "cpu")).startswith("cuda") else None
    return EgoEvaluation(result)


def quick_evaluate(model: Any) -> EgoEvaluation:
    """The smallest honest `evaluate`: two held-out concepts, one positive and one hard-negative query
    each, two-frame videos, no layer calibration, two timed answers."""
    return evaluate(model, seed=0, n_concepts=2, queries={"positive": 1, "hard_negative": 1}, calibrate=False,
                    video_frames=2, timing_queries=2, progress=False)


def _evaluate(model: Any, seed: int, n_concepts: int, budget: float | int, world_seed: int,
              queries: dict[str, int] | None, calibrate: bool, video_frames: int, captions: bool,
              timing_queries: int, progress: bool, split: str) -> dict[str, Any]:
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    fmt = format_for(model)
    kinds = dict(queries or QUERY_KINDS)
    world = ShapesWorld(seed=world_seed, split=split)
    concepts = held_out_concepts(world, seed, n_concepts, split)
    rng = np.random.default_rng([seed, 12])

    layers = None
    if calibrate:
        val = ShapesWorld(seed=world_seed, split="val")
        from egokit.data.concept_pool import split_concepts

        cal_concepts = split_concepts(val, "val")[:8]
        cal_views = [val.reference_views(c, 1, clutter=bool(i % 2))[0] for i, c in enumerate(cal_concepts)]
        layers = ego.calibrate_layers(model, cal_views, budget=budget, keep=2, format=fmt).layers

    refs = [world.reference_views(c, 1, clutter=True)[0] for c in concepts]
    masks = [ego.subject_mask(r, c.name) for r, c in zip(refs, concepts)]

    # -- memories -----------------------------------------------------------------------------------
    ego.remember(model, refs[0], concepts[0].name, budget=budget, layers=layers, format=fmt)  # warm-up
    memories: dict[str, list[ConceptMemory]] = {m: [] for m in [*METHODS, "ego_dynamic"]}
    bar = tqdm(total=len(concepts), desc="ego eval: remember", disable=not progress)
    for i, (c, ref) in enumerate(zip(concepts, refs)):
        for key, selection in METHODS.items():
            memories[key].append(ego.remember(model, ref, c.name, selection=selection, budget=budget,
                                              layers=layers, seed=seed * 1000 + i, format=fmt, masks=[masks[i]]))
        memories["ego_dynamic"].append(ego.remember(model, ref, c.name, budget=budget, layers=layers,
                                                    dynamic_budget=True, format=fmt))
        bar.update()
    bar.close()

    precision = {key: float(np.mean([precision_inside(m.views[0].selected, mask_coverage(mask, m.views[0].boxes))
                                     for m, mask in zip(memories[key], masks)]))
                 for key in ("ego", "uniform", "random", "oracle")}

    # -- single-concept recognition -----------------------------------------------------------------
    queries_of: list[list[tuple[str, EncodedImage]]] = []
    for c in concepts:
        items = []
        for kind, count in kinds.items():
            for j in range(count):
                scene = world.concept_query(c, kind, seed * 1000 + j)
                items.append((kind, encode_image(model, scene.image)))
        queries_of.append(items)
    labels_by = {key: [] for key in memories}
    preds_by = {key: [] for key in memories}
    kind_hits: dict[str, dict[str, list[bool]]] = {key: {k: [] for k in kinds} for key in memories}
    bar = tqdm(total=len(memories) * len(concepts), desc="ego eval: recognise", disable=not progress)
    for key, mems in memories.items():
        for c, mem, items in zip(concepts, mems, queries_of):
            for kind, enc in items:
                a = ego.ask(model, mem, enc, fmt.question(c.name), max_new_tokens=1, format=fmt, check_model=False)
                label = kind == "positive"
                labels_by[key].append(label)
                preds_by[key].append(a.yes)
                kind_hits[key][kind].append(a.yes == label)
            bar.update()
    bar.close()
    f1 = {key: f1_score(labels_by[key], preds_by[key]) for key in memories}
    per_kind = {key: {k: float(np.mean(v)) for k, v in hits.items()} for key, hits in kind_hits.items()}

    # -- multi-concept --------------------------------------------------------------------------------
    groups: list[list[int]] = []
    i = 0
    while i + 2 <= len(concepts):
        size = 3 if (len(groups) % 2 == 1 and i + 3 <= len(concepts)) else 2
        groups.append(list(range(i, i + size)))
        i += size
    multi_labels: dict[str, list[bool]] = {"ego": [], "all_tokens": []}
    multi_preds: dict[str, list[bool]] = {"ego": [], "all_tokens": []}
    for g, members in enumerate(tqdm(groups, desc="ego eval: multi-concept", disable=not progress)):
        group = [concepts[k] for k in members]
        patterns: list[list[bool]] = [[False] * len(group)]
        for _ in range(2):
            one = [False] * len(group)
            one[int(rng.integers(len(group)))] = True
            patterns.append(one)
        two = [False] * len(group)
        for k in rng.choice(len(group), size=2, replace=False):
            two[int(k)] = True
        patterns.append(two)
        for p, present in enumerate(patterns):
            scene = world.multi_concept_scene(group, present, index=seed * 1000 + g * 10 + p)
            enc = encode_image(model, scene.image)
            for key in multi_preds:
                bank = MemoryBank([memories[key][k] for k in members])
                for c, here in zip(group, present):
                    a = ego.ask(model, bank, enc, fmt.question(c.name), max_new_tokens=1, format=fmt,
                                check_model=False)
                    multi_labels[key].append(bool(here))
                    multi_preds[key].append(a.yes)
    multi_f1 = {key: f1_score(multi_labels[key], multi_preds[key]) for key in multi_preds}

    # -- video ------------------------------------------------------------------------------------------
    video_labels: dict[str, list[bool]] = {"ego": [], "all_tokens": []}
    video_preds: dict[str, list[bool]] = {"ego": [], "all_tokens": []}
    for i, c in enumerate(tqdm(concepts, desc="ego eval: video", disable=not progress)):
        positive = world.video(c, n_frames=video_frames, index=seed * 1000 + i)
        negative = world.video(_hard_negative_concept(c, rng), n_frames=video_frames, index=seed * 1000 + i)
        for label, frames in ((True, positive), (False, negative)):
            enc = [encode_image(model, f.image) for f in frames]
            for key in video_preds:
                a = ego.ask(model, memories[key][i], enc, fmt.question(c.name), max_new_tokens=1, format=fmt,
                            check_model=False)
                video_labels[key].append(label)
                video_preds[key].append(a.yes)
    video_f1 = {key: f1_score(video_labels[key], video_preds[key]) for key in video_preds}

    # -- personalized captions -------------------------------------------------------------------------
    caption_rate = None
    examples: list[dict[str, str]] = []
    if captions:
        used = []
        for i, c in enumerate(tqdm(concepts, desc="ego eval: captions", disable=not progress)):
            scene = world.concept_query(c, "positive", seed * 1000 + 500 + i)
            a = ego.ask(model, memories["ego"][i], scene.image, fmt.caption, max_new_tokens=24, format=fmt,
                        check_model=False)
            words = [w.strip(".,?!").lower() for w in a.text.split()]
            used.append(c.name.lower() in words)
            if len(examples) < 3:
                examples.append({"name": c.name, "caption": a.text, "truth": _personal_caption(scene)})
        caption_rate = float(np.mean(used))

    # -- timing ------------------------------------------------------------------------------------------
    answer_s: dict[str, float] = {}
    timing_scenes = [world.concept_query(concepts[j % len(concepts)], "positive", seed * 1000 + 700 + j)
                     for j in range(timing_queries)]
    for key in ("ego", "all_tokens"):
        times = []
        for j, scene in enumerate(timing_scenes):
            c_idx = j % len(concepts)
            t0 = time.perf_counter()
            ego.ask(model, memories[key][c_idx], scene.image, fmt.question(concepts[c_idx].name),
                    max_new_tokens=1, format=fmt, check_model=False)
            times.append(time.perf_counter() - t0)
        answer_s[key] = _median(times)

    tokens = {key: float(np.mean([m.n_tokens for m in memories[key]])) for key in ("ego", "ego_dynamic",
                                                                                      "all_tokens", "keywords")}
    nbytes = {key: float(np.mean([m.nbytes for m in memories[key]])) for key in ("ego", "ego_dynamic",
                                                                                     "all_tokens", "keywords")}
    result = {
        "model": getattr(model, "name", "?"),
        "fingerprint": model.fingerprint(),
        "seed": seed,
        "settings": {"concepts": len(concepts), "budget": budget, "world_seed": world_seed, "split": split,
                     "reference": "one cluttered view", "queries_per_concept": kinds, "layers": layers,
                     "format": fmt.name, "video_frames": video_frames, "threshold": "P(yes) > 0.5"},
        "selection_precision": precision,
        "f1": f1,
        "multi_concept_f1": multi_f1,
        "video_f1": video_f1,
        "memory_tokens": tokens,
        "memory_bytes": nbytes,
        "add_concept_s": _median([m.seconds for m in memories["ego"]]),
        "answer_s": answer_s,
        "personalized_caption_name_rate": caption_rate,
        "caption_examples": examples,
        "per_kind": per_kind,
        "counts": {"recognition_queries": len(labels_by["ego"]), "multi_concept_questions": len(multi_labels["ego"]),
                   "videos": len(video_labels["ego"]), "groups": len(groups)},
        "seconds": time.perf_counter() - t_start,
    }
    return _round(result)


def check_targets(result: EgoEvaluation | dict[str, Any]) -> dict[str, bool]:
    """The issue's acceptance checks on an evaluation result."""
    if isinstance(result, EgoEvaluation):
        result = result.to_dict()
    f1, sp, tok = result["f1"], result["selection_precision"], result["memory_tokens"]
    return {
        "precision_ego_ge_2x_uniform": sp["ego"] >= 2 * sp["uniform"],
        "f1_ego_ge_uniform_plus_0.05": f1["ego"] >= f1["uniform"] + 0.05,
        "f1_ego_ge_keywords": f1["ego"] >= f1["keywords"],
        "f1_ego_ge_all_tokens_minus_0.03": f1["ego"] >= f1["all_tokens"] - 0.03,
        "ego_tokens_le_quarter_of_all": tok["ego"] <= 0.25 * tok["all_tokens"],
        "multi_ego_ge_all_tokens_minus_0.03": result["multi_concept_f1"]["ego"]
        >= result["multi_concept_f1"]["all_tokens"] - 0.03,
        "add_concept_under_1s": result["add_concept_s"] < 1.0,
    }


__all__ = ["DEFAULT_MODEL", "METHODS", "QUERY_KINDS", "EgoEvaluation", "check_targets", "evaluate", "f1_score",
           "flatten", "held_out_concepts", "quick_evaluate"]
