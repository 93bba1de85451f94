"""Ego: training-free personalization of a VLM from attention-selected visual tokens.

    import egokit
    model = egokit.load("micro-vlm")
    bix = egokit.ego.remember(model, reference_image, "bix", budget=0.2)   # one generation + one forward
    bank = egokit.ego.MemoryBank([bix])
    egokit.ego.ask(model, bank, test_image, "is bix in this image ?").text  # "yes"

`remember` (Seifi et al., CVPR 2026): (1) ask the model to describe the reference view's subject;
(2) keep the description's keyword tokens (no punctuation, no function words; or the caller's
keywords); (3) one teacher-forced forward over [reference image, prompt, description] that captures
only the keyword rows × visual columns of the chosen language layers; (4) score each visual token by
the mean (or max) over layers, heads and keywords; (5) budget: a fixed K or share, or — with
`dynamic_budget=True` — the model's own answer to "what percentage of the image does the subject
cover?", capped by the budget; (6) keep the top-K tokens in raster order and store their projector
outputs (the language model's input embeddings) with the name. Several views: select per view and
concatenate. No gradient step, no training.

`ask` puts each memory in the context as soft visual tokens followed by "this is <name> .", then the
test image (or video frames) and the question (`egokit.models.context`), and decodes greedily
(`egokit.models.generation.greedy_from_embeds`). With more concepts than
the prompt format allows, the bank is pre-filtered by the similarity between test-image tokens and
memory tokens (concepts named in the question always stay).

`calibrate_layers` ranks language layers by how much of the top-K keyword attention falls inside
ground-truth masks (ShapesWorld gives them for free) and keeps the best few; the result is cached per
model (by fingerprint) and `remember(layers=None)` then uses it.

Baselines share the API (`selection=`): "uniform", "random", "oracle" (ground-truth mask, an upper
bound), "all" (whole-image memory) and "keywords" (a text memory, no visual token).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from egokit.errors import InputError
from egokit.methods.ego.answer import Answer, answer_ids, p_yes
from egokit.methods.ego.formats import PromptFormat, resolve_format
from egokit.methods.ego.keywords import keyword_words
from egokit.methods.ego.look import ReferenceLook, look_at_reference, view_pixels
from egokit.methods.ego.memory import ConceptMemory, MemoryBank, MemoryView
from egokit.methods.ego.select import (
    SELECTIONS,
    budget_k,
    coverage_k,
    mask_coverage,
    precision_inside,
    select,
    top_k_raster,
)
from egokit.models.adapters.base import GENERATES_TEXT, SOFT_VISUAL_TOKENS
from egokit.models.context import EncodedImage, Memory, Picture, build, encode_image, tokenizer_of
from egokit.models.generation import greedy_from_embeds
from egokit.models.text import check_known_words
from egokit.results import Result

DEFAULT_BUDGET = 0.2
DESCRIBE_TOKENS = 16

# ---------------------------------------------------------------------------------------------- inputs


def _is_scene(x: Any) -> bool:
    return hasattr(x, "image") and hasattr(x, "objects")


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("no images given: pass at least one reference view")
        return list(images)
    return [images]


def _keyword_text(model: Any, keywords: Sequence[str]) -> str:
    """The keywords joined into one text; the words the model cannot read are named (`check_known_words`:
    a warning, or an `InputError` when it can read none of them)."""
    text = " ".join(str(k) for k in keywords)
    if text.strip():
        check_known_words(tokenizer_of(model), text, f"the keywords {text.strip()!r}")
    return text


def _check_vlm(model: Any) -> None:
    adapter = getattr(model, "adapter", None)
    if adapter is None:
        raise InputError(f"pass a LoadedModel (egokit.load(...) or egokit.models.loading.from_model), not a "
                         f"{type(model).__name__}")
    adapter.require(GENERATES_TEXT, "Ego")
    adapter.require(SOFT_VISUAL_TOKENS, "Ego")


def _picture(x: Any) -> Any:
    return x.image if _is_scene(x) else x


def subject_mask(scene: Any, name: str) -> np.ndarray:
    """The mask of a ShapesWorld scene's subject: the object called `name`, else the named object, else
    the only object."""
    objects = list(scene.objects)
    for wanted in (name, None):
        for o in objects:
            if (o.name == wanted) if wanted is not None else (o.name is not None):
                return o.mask
    if len(objects) == 1:
        return objects[0].mask
    raise InputError("cannot tell which object of the scene is the subject: pass masks=")


def _masks_for(views: list[Any], masks: Any, name: str) -> list[np.ndarray | None]:
    if masks is None:
        return [subject_mask(v, name) if _is_scene(v) else None for v in views]
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        masks = [masks]
    masks = list(masks)
    if len(masks) != len(views):
        raise InputError(f"{len(masks)} masks for {len(views)} views: give one mask per view")
    return [None if m is None else np.asarray(m, dtype=bool) for m in masks]


# ---------------------------------------------------------------------------------------------- helpers


def _decode(model: Any, ctx: Any, max_new_tokens: int) -> tuple[list[int], torch.Tensor]:
    """Greedy answer ids of one context and the logits of its first answer token."""
    out = greedy_from_embeds(model.model, ctx.embeds, ctx.attention_mask, ctx.position_ids, max_new_tokens)
    return out.token_ids[0], out.first_logits[0]


@torch.no_grad()
def generate_text(model: Any, images: Any, question: str, max_new_tokens: int = DESCRIBE_TOKENS) -> str:
    """Greedy answer of `model` to `question` about one image (or none), via the context machinery."""
    pieces: list[Any] = [Picture(encode_image(model, _picture(im))) for im in ([] if images is None else _as_list(images))]
    ctx = build(model, [*pieces, question])
    ids, _ = _decode(model, ctx, max_new_tokens)
    return tokenizer_of(model).decode(ids, skip_special_tokens=True).strip()


def describe(model: Any, image: Any, format: PromptFormat | str | None = None,
             max_new_tokens: int = DESCRIBE_TOKENS) -> str:
    """The model's description of an image's subject (the format's `describe` prompt)."""
    fmt = resolve_format(model, format)
    return generate_text(model, _picture(image), fmt.describe, max_new_tokens)


# ---------------------------------------------------------------------------------------------- layers

_CALIBRATIONS: dict[str, LayerCalibration] = {}


@dataclass
class LayerCalibration(Result):
    """Language layers ranked by how much of the top-K keyword attention lands inside the subject's mask.

    precision[l]: mean share of layer l's top-K tokens inside the mask, over the calibration images.
    ranking:      layers, best first; layers: the `keep` best (what `remember(layers=None)` uses).
    """

    FILE_KIND: ClassVar[str] = "egokit.ego.layer_calibration"
    FILE_VERSION: ClassVar[int] = 1
    FILE_WHAT: ClassVar[str | None] = "Ego layer calibration"

    layers: list[int]
    ranking: list[int]
    precision: dict[int, float]
    images: int
    budget: float | int
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "ranking": self.ranking,
                "precision": {str(k): v for k, v in self.precision.items()}, "images": self.images,
                "budget": self.budget, "fingerprint": self.fingerprint}

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> LayerCalibration:
        return cls(layers=[int(x) for x in meta["layers"]], ranking=[int(x) for x in meta["ranking"]],
                   precision={int(k): float(v) for k, v in meta["precision"].items()}, images=int(meta["images"]),
                   budget=meta["budget"], fingerprint=str(meta.get("fingerprint", "")))

    def to_image(self) -> Any:
        """Bars of the precision per layer, the kept layers dark."""
        from egokit.methods.ego.render import calibration_picture

        return calibration_picture(self)


def calibrated_layers(model: Any) -> list[int] | None:
    """The layers `calibrate_layers` chose for this model in this session, or None."""
    found = _CALIBRATIONS.get(model.fingerprint())
    return list(found.layers) if found is not None else None


@torch.no_grad()
def calibrate_layers(model: Any, images: Sequence[Any], masks: Sequence[Any] | None = None, *,
                     budget: int | float = DEFAULT_BUDGET, keep: int = 2, keywords: Sequence[str] | None = None,
                     format: PromptFormat | str | None = None, cache: bool = True,
                     progress: bool = False) -> LayerCalibration:
    """Rank language layers by the share of top-K keyword attention inside ground-truth masks.

    images: reference views (ShapesWorld scenes give their subject's mask, so `masks` may be omitted).
    masks:  one (H, W) boolean mask of the subject per image.
    keep:   how many of the best layers to keep. The result is cached per model (`cache=True`), and
            `remember(..., layers=None)` uses the cached layers.
    """
    _check_vlm(model)
    fmt = resolve_format(model, format)
    views = _as_list(images)
    view_masks = _masks_for(views, masks, name="")
    if any(m is None for m in view_masks):
        raise InputError("calibrate_layers needs a ground-truth mask for every image: pass masks=")
    n_layers = model.adapter.num_layers("language")
    totals = np.zeros(n_layers)
    iterator = views
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(views, desc="calibrate layers")
    for view, mask in zip(iterator, view_masks):
        picture = _picture(view)
        text = _keyword_text(model, keywords) if keywords else describe(model, picture, fmt)
        ref = look_at_reference(model, picture, text, fmt.describe, layers=None, keep_all=bool(keywords))
        coverage = mask_coverage(mask, ref.boxes)
        k = budget_k(budget, ref.n_tokens)
        for layer in ref.layers:
            totals[layer] += precision_inside(top_k_raster(ref.scores(layers=[layer]), k), coverage)
    precision = {layer: float(totals[layer] / len(views)) for layer in range(n_layers)}
    ranking = sorted(precision, key=lambda layer: (-precision[layer], layer))
    result = LayerCalibration(layers=sorted(ranking[: max(1, keep)]), ranking=ranking, precision=precision,
                              images=len(views), budget=budget, fingerprint=model.fingerprint())
    if cache:
        _CALIBRATIONS[result.fingerprint] = result
    return result


# ---------------------------------------------------------------------------------------------- remember


@torch.no_grad()
def look_at(model: Any, image: Any, *, keywords: Sequence[str] | None = None, description: str | None = None,
            layers: Sequence[int] | None = None, format: PromptFormat | str | None = None) -> ReferenceLook:
    """Describe a reference view (unless `keywords`/`description` are given) and capture its words'
    attention to every visual token of the chosen layers (default: all) — `ReferenceLook`."""
    fmt = resolve_format(model, format)
    picture = _picture(image)
    if keywords is not None:
        text = _keyword_text(model, keywords)
    else:
        text = description if description is not None else describe(model, picture, fmt)
    return look_at_reference(model, picture, text, fmt.describe, layers=None if layers is None else list(layers),
                             keep_all=keywords is not None)


def _resolve_layers(model: Any, layers: Sequence[int] | None) -> list[int] | None:
    if layers is None:
        return calibrated_layers(model)
    n = model.adapter.num_layers("language")
    out = sorted({int(layer) % n for layer in layers})
    for layer in layers:
        if not -n <= int(layer) < n:
            raise InputError(f"layer {layer} does not exist: the language model has {n} layers")
    return out


@torch.no_grad()
def remember(model: Any, images: Any, name: str, *, budget: int | float = DEFAULT_BUDGET,
             layers: Sequence[int] | None = None, aggregate: str = "mean", selection: str = "ego",
             keywords: Sequence[str] | None = None, description: str | None = None, dynamic_budget: bool = False,
             masks: Any = None, seed: int = 0, format: PromptFormat | str | None = None,
             keep_images: bool = True) -> ConceptMemory:
    """Remember a personal concept from one or more reference views (see the module docstring).

    model:     a `LoadedModel` of a generative VLM (`egokit.load(...)`).
    images:    a reference view or a list of views (images, paths, arrays or ShapesWorld scenes).
    name:      the concept's name, used in every later prompt ("this is <name> .").
    budget:    tokens kept per view: an int (count) or a share in (0, 1] of the view's tokens.
    layers:    language layers whose attention scores tokens; None: the calibrated ones
               (`calibrate_layers`), else all.
    aggregate: "mean" (the paper's equation) or "max" over layers, heads and keywords.
    selection: "ego" (default), or a baseline: "uniform", "random", "oracle", "all", "keywords".
    keywords:  use these words instead of the model's description (all of them count as keywords).
    description: use this description instead of generating one (its keywords are filtered as usual).
    dynamic_budget: K = min(budget, the model's coverage answer × tokens / 100).
    masks:     ground-truth subject masks per view, for selection="oracle" (scenes provide their own).
    seed:      for selection="random".
    format:    a `PromptFormat` or its name; default `format_for(model)`.
    """
    start = time.perf_counter()
    _check_vlm(model)
    if selection not in SELECTIONS:
        raise InputError(f"unknown selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
    if aggregate not in ("mean", "max"):
        raise InputError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
    if not isinstance(name, str) or not name.strip() or len(name.split()) != 1:
        raise InputError(f"a concept name must be one word, got {name!r}")
    fmt = resolve_format(model, format)
    adapter = model.adapter
    views = _as_list(images)
    view_masks = _masks_for(views, masks, name) if selection == "oracle" or masks is not None else [None] * len(views)
    chosen_layers = _resolve_layers(model, layers)
    rng = np.random.default_rng(seed)

    needs_text = selection in ("ego", "keywords") or dynamic_budget
    keep_all = keywords is not None
    if keywords is not None:
        text = " ".join(str(k) for k in keywords)
        if not text.strip():
            raise InputError("keywords are empty: pass some words, or None to use the model's description")
        _keyword_text(model, keywords)
    elif description is not None:
        text = description
    elif needs_text:
        text = describe(model, views[0], fmt)
    else:
        text = ""
    if needs_text and not text.strip():
        raise InputError("the model gave an empty description; pass keywords= or description=")

    coverage_answer = None
    if dynamic_budget:
        coverage_answer = generate_text(model, _picture(views[0]), fmt.coverage, max_new_tokens=4)

    rows_out: list[torch.Tensor] = []
    mem_views: list[MemoryView] = []
    budgets: list[int] = []
    used_layers: list[int] = []
    kw: list[str] = []
    if text:
        kw = [w.text for w in keyword_words(tokenizer_of(model), _ids(model, text), keep_all=keep_all)]
    for view, mask in zip(views, view_masks):
        picture = _picture(view)
        if selection == "ego":
            ref = look_at_reference(model, picture, text, fmt.describe, layers=chosen_layers, keep_all=keep_all)
            features, boxes, grid = ref.features, ref.boxes, ref.grid
            scores = ref.scores(aggregate=aggregate)
            used_layers = list(ref.layers)
        else:
            inputs = adapter.prepare([picture], adapter.prompt(fmt.describe, 1))
            layout = adapter.visual_layout(inputs, 0)[0]
            features = adapter.image_features(inputs)[0][layout.feature_index.to(model.device)]
            boxes, grid = layout.boxes.float().cpu(), tuple(layout.grid)
            scores = torch.zeros(len(layout))
        n = int(features.shape[0])
        k = budget_k(budget, n)
        if coverage_answer is not None:
            k = coverage_k(coverage_answer, n, k) or k
        coverage = mask_coverage(mask, boxes) if mask is not None else None
        if selection == "oracle" and coverage is not None:
            scores = coverage.clone()
        chosen = select(selection, n, k, scores=scores, coverage=coverage, seed=rng)
        rows_out.append(features[chosen.to(features.device)].detach())
        budgets.append(int(chosen.numel()))
        mem_views.append(MemoryView(scores=scores.float(), selected=chosen, boxes=boxes,
                                    grid=grid, image=view_pixels(picture) if keep_images else None))
    embeddings = torch.cat(rows_out).cpu()
    return ConceptMemory(
        name=name, embeddings=embeddings, selection=selection, description=text, keywords=kw, views=mem_views,
        layers=used_layers, aggregate=aggregate, budget=budgets, coverage_answer=coverage_answer,
        fingerprint=model.fingerprint(), model_name=model.name, seconds=time.perf_counter() - start,
    )


def _ids(model: Any, text: str) -> list[int]:
    ids = tokenizer_of(model)(text, add_special_tokens=False)["input_ids"]
    return ids[0] if ids and isinstance(ids[0], list) else list(ids)


def selection_precision(memory: ConceptMemory, masks: Sequence[Any]) -> float:
    """How much of a memory's tokens (all views) lies on the subject: the share of the kept patches' pixels
    inside the subject's mask of their view (`ego_select.precision_inside`)."""
    inside, total = 0.0, 0
    for view, mask in zip(memory.views, masks):
        cov = mask_coverage(mask, view.boxes)
        inside += float(cov[view.selected].sum())
        total += int(view.selected.numel())
    return inside / total if total else float("nan")


# ---------------------------------------------------------------------------------------------- ask


def _as_bank(bank: Any) -> MemoryBank:
    if bank is None:
        return MemoryBank()
    if isinstance(bank, MemoryBank):
        return bank
    if isinstance(bank, ConceptMemory):
        return MemoryBank([bank])
    if isinstance(bank, (list, tuple)):
        return MemoryBank(list(bank))
    raise InputError(f"pass a MemoryBank, a ConceptMemory or a list of them, not {type(bank).__name__}")


def similarity(memory: ConceptMemory, image: EncodedImage) -> float:
    """How well a test image matches a memory: mean over memory tokens of the best cosine similarity with
    any test-image token (−1 … 1; a text-only memory scores 0)."""
    if memory.n_tokens == 0:
        return 0.0
    m = torch.nn.functional.normalize(memory.embeddings.float(), dim=-1)
    x = torch.nn.functional.normalize(image.features.detach().float().cpu(), dim=-1)
    return float((m @ x.T).max(dim=1).values.mean())


def _named_in(question: str, names: Sequence[str]) -> list[str]:
    words = {w.strip(".,?!:;\"'()<>").lower() for w in question.split()}
    return [n for n in names if n.lower() in words]


def choose_concepts(bank: MemoryBank, images: Sequence[EncodedImage], question: str,
                    limit: int) -> list[str]:
    """Concepts to put in the context: all when they fit, else those named in the question plus the
    most similar to the test image(s), up to `limit`, in bank order."""
    names = bank.names
    if len(names) <= limit:
        return names
    named = _named_in(question, names)
    scores = {n: max(similarity(bank[n], im) for im in images) for n in names}
    rest = sorted((n for n in names if n not in named), key=lambda n: -scores[n])
    keep = set(named[:limit]) | set(rest[: max(0, limit - len(named))])
    return [n for n in names if n in keep]


def _memory_pieces(bank: MemoryBank, names: Sequence[str], fmt: PromptFormat) -> list[Any]:
    pieces: list[Any] = []
    for n in names:
        m = bank[n]
        if m.n_tokens == 0:
            pieces.append(fmt.introduce_text(n, m.keywords))
        else:
            pieces += [Memory(m.embeddings), fmt.introduce(n)]
    return pieces


def _encoded(model: Any, x: Any) -> EncodedImage:
    return x if isinstance(x, EncodedImage) else encode_image(model, _picture(x))


@torch.no_grad()
def ask(model: Any, bank: Any, image_or_frames: Any, question: str, *, concepts: Sequence[str] | None = None,
        max_new_tokens: int = 24, format: PromptFormat | str | None = None, max_concepts: int | None = None,
        check_model: bool = True) -> Answer:
    """Answer `question` about a test image (or video frames) with the bank's concepts in the context.

    bank:            a `MemoryBank`, a `ConceptMemory`, a list of them, or None (no memory).
    image_or_frames: one image (path, PIL, array, scene) or a list of frames.
    concepts:        names to use (default: the bank's, pre-filtered to `max_concepts` by similarity).
    max_new_tokens:  1 is enough for yes/no questions (then only `p_yes` and the first word are computed).
    """
    start = time.perf_counter()
    _check_vlm(model)
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty")
    fmt = resolve_format(model, format)
    memories = _as_bank(bank)
    if check_model and len(memories):
        memories.check_model(model)
    frames = _as_list(image_or_frames)
    encoded = [_encoded(model, f) for f in frames]
    if concepts is not None:
        names = [memories[n].name for n in concepts]
    else:
        names = choose_concepts(memories, encoded, question, max_concepts or fmt.max_concepts)
    pieces = _memory_pieces(memories, names, fmt)
    tok = tokenizer_of(model)
    yes_ids, no_ids = answer_ids(tok, fmt.yes), answer_ids(tok, fmt.no)
    n_memory = sum(memories[n].n_tokens for n in names)

    def one(images: list[EncodedImage]) -> Answer:
        ctx = build(model, [*pieces, *(Picture(e) for e in images), question])
        ids, first = _decode(model, ctx, max_new_tokens)
        return Answer(text=tok.decode(ids, skip_special_tokens=True).strip(),
                      p_yes=p_yes(first, yes_ids, no_ids), concepts=list(names),
                      memory_tokens=n_memory, context_tokens=ctx.length, seconds=0.0, prompt=ctx.text)

    if len(encoded) > 1 and fmt.video == "per_frame":
        per = [one([e]) for e in encoded]
        probs = [a.p_yes for a in per if a.p_yes is not None]
        best = max(probs) if probs else None
        yes = best > 0.5 if best is not None else any(a.yes for a in per)
        answer = Answer(text=(fmt.yes[0] if yes else fmt.no[0]).strip(), p_yes=best, concepts=list(names),
                        memory_tokens=n_memory, context_tokens=max(a.context_tokens for a in per),
                        seconds=0.0, prompt=per[0].prompt, frames=per)
    else:
        answer = one(encoded)
    answer.seconds = time.perf_counter() - start
    return answer


__all__ = [
    "DEFAULT_BUDGET",
    "LayerCalibration",
    "ask",
    "calibrate_layers",
    "calibrated_layers",
    "choose_concepts",
    "describe",
    "encode_image",
    "generate_text",
    "look_at",
    "remember",
    "selection_precision",
    "similarity",
    "subject_mask",
]
