"""The micro VLM's training mixture and evaluation prompts, built from ShapesWorld scenes.

Every example is a one-turn chat: a list of pieces (text and `Visual` image slots) and an answer.

Single-image tasks
- caption:   "describe the image ."  → the caption, objects listed left to right (`canonical_caption`);
- vqa:       a scene question (count, colour, shape, pattern, position, yes/no) → its answer;
- subject:   "describe the subject ." (a reference view or a one-object scene) → keywords such as
             "red striped circle" or "purple and green cross with a white ring" (`subject_keywords`);
- coverage:  "what percentage of the image does the subject cover ?" → "10" … "100" (Ego's budget).

In-context tasks (personal concepts; names drawn from `NAME_POOL` per example, so only the context
binds a name to a look)
- recognise: [memory] "this is <n> ." [query] "is <n> in this image ?" → yes / no. Queries are
             positives, hard negatives (same shape and colours, another mark; weighted up), easy
             negatives and distractor-only scenes (the reference's companions without the concept);
- multi:     2–3 memories, each followed by "this is <n_k> .", then a scene with some of them and a
             question about one name;
- personal:  [memory] "this is <n> ." [query] "describe the image ." → the caption with the concept's
             noun phrase replaced by its name (or the plain caption when it is absent); the name's
             tokens weigh `MixtureConfig.name_weight` in the example's loss (5 in the second mixture).

A memory is a reference view of the concept (alone, or cluttered with its companions) given as all
its tokens or as a random subset of 10–100 % of them in raster order (10–50 % when there are several
concepts, to keep contexts short); with `MixtureConfig.object_memory` (0 in the first two mixtures) a share
of memories keeps instead the 10–30 % of tokens that cover the concept most (from its mask, as a perfect
selector would); subsets are never chosen by attention. Query-image slots carry per-token labels (which
memory's concept covers that patch, 0 for none) for the auxiliary recognition head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from egokit.data import captions as cap
from egokit.data.captions import canonical_caption
from egokit.data.concept_pool import renamed, split_concepts
from egokit.data.concepts import Concept
from egokit.data.scenes import Scene, SceneObject
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import NAME_POOL

CAPTION_PROMPT = "describe the image ."
SUBJECT_PROMPT = "describe the subject ."
COVERAGE_PROMPT = "what percentage of the image does the subject cover ?"
MAX_CONCEPTS = 3


def intro(name: str) -> str:
    """The text after a concept's memory."""
    return f"this is {name} ."


def presence_question(name: str) -> str:
    return f"is {name} in this image ?"


@dataclass
class Visual:
    """An image slot: image number `image` of the batch, tokens `keep` (raster order; None = all), and
    per-token labels `match` for the recognition head (None for memories)."""

    image: int
    keep: np.ndarray | None = None
    match: np.ndarray | None = None


@dataclass
class Example:
    pieces: list[str | Visual]
    answer: str
    task: str
    weight: float = 1.0
    meta: dict = field(default_factory=dict)
    #: words of the answer whose tokens weigh `MixtureConfig.name_weight` in the loss (a concept's name)
    stress: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- text


def subject_keywords(obj: SceneObject) -> str:
    """Keywords of one object: colours, pattern (one-colour objects), shape, mark."""
    words = [obj.color] if obj.color2 is None else [obj.color, "and", obj.color2]
    if obj.color2 is None:
        words.append(obj.pattern)
    words.append(obj.shape)
    if obj.mark is not None:
        words += ["with", "a", obj.mark_color or "black", obj.mark]
    return " ".join(words)


def subject_index(scene: Scene) -> int:
    """The subject of a reference view (the named object) or of a one-object scene."""
    for k, o in enumerate(scene.objects):
        if o.name is not None:
            return k
    return 0


def token_labels(scene: Scene, names: Sequence[str]) -> np.ndarray:
    """Per-patch label: 1 + k when the patch shows the concept named `names[k]`, else 0."""
    labels, _ = scene.patch_labels()
    flat = labels.ravel()
    out = np.zeros(flat.shape, dtype=np.int64)
    for j, o in enumerate(scene.objects):
        if o.name in names:
            out[flat == j] = 1 + list(names).index(o.name)
    return out


def random_keep(rng: np.random.Generator, n_tokens: int, fraction: float) -> np.ndarray:
    """A random subset of `round(fraction * n_tokens)` tokens (at least 1), in raster order."""
    k = max(1, int(round(fraction * n_tokens)))
    return np.sort(rng.choice(n_tokens, size=k, replace=False))


def oracle_keep(scene: Scene, obj: int, fraction: float) -> np.ndarray:
    """The `fraction` of tokens whose patches overlap object `obj`'s mask most (raster order).

    The zoo evaluation's probe, and the training memories of `MixtureConfig.object_memory` (never Ego's
    keyword selection, which is what the evaluations measure against it)."""
    _, cover = scene.patch_labels()
    score = cover[obj].ravel()
    k = max(1, int(round(fraction * score.size)))
    order = np.lexsort((np.arange(score.size), -score))
    return np.sort(order[:k])


# ---------------------------------------------------------------------------------------------- mixture


@dataclass
class MixtureConfig:
    """Weights of the tasks and knobs of the in-context examples."""

    single: dict[str, float] = field(default_factory=lambda: {
        "caption": 0.25, "vqa": 0.40, "subject": 0.2, "coverage": 0.15})
    incontext: dict[str, float] = field(default_factory=lambda: {
        "recognise": 0.6, "multi": 0.2, "personal": 0.2})
    concept_scene_share: float = 0.25     # single-image tasks on concept scenes instead of ordinary ones
    full_memory: float = 0.35             # share of memories with all tokens (else 10–100 % at random)
    clutter: float = 0.5                  # share of cluttered reference views
    positive: float = 0.5                 # share of positive queries
    hard_start: float = 0.25              # share of hard negatives among negatives, at step 0 ...
    hard_end: float = 0.6                 # ... and at the end (linear curriculum)
    hard_weight: float = 2.0              # loss weight of hard-negative examples
    vqa_kinds: dict[str, float] = field(default_factory=dict)  # how often each question kind is drawn (default 1)
    name_weight: float = 1.0              # loss weight of the name's tokens in a personalized caption
    object_memory: float = 0.0            # share of memories kept to the concept's own patches (10–30 %)

    @classmethod
    def v2(cls) -> MixtureConfig:
        """The second mixture (`VlmRecipe.v2`): what the first model lagged on, weighted up (measured on
        the shipped v1 model: position questions 0.47, yes/no 0.63, shape 0.67, hard negatives 0.70, a
        personalized caption that never used the name), and more cluttered references, where choosing
        a memory's tokens matters."""
        return cls(incontext={"recognise": 0.5, "multi": 0.2, "personal": 0.3},
                   clutter=0.8, hard_end=0.7, hard_weight=3.0,
                   vqa_kinds={"position": 3.0, "yesno": 2.0, "shape": 1.5, "color": 1.5}, name_weight=5.0)


class Mixture:
    """Builds batches of examples; everything depends only on (seed, step) and the world."""

    def __init__(self, world: ShapesWorld, seed: int, n_tokens: int = 64,
                 config: MixtureConfig | None = None) -> None:
        self.world = world
        self.seed = seed
        self.n_tokens = n_tokens
        self.cfg = config or MixtureConfig()
        self.concepts = split_concepts(world)
        self.world_one = ShapesWorld(seed=world.seed, size=world.size, patch=world.patch, split=world.split,
                                     holdout=world.holdout, min_objects=1, max_objects=1, noise=world.noise)

    # -- helpers -----------------------------------------------------------------------------------

    def _pick(self, rng: np.random.Generator, weights: dict[str, float]) -> str:
        keys = list(weights)
        p = np.array([weights[k] for k in keys], dtype=float)
        return keys[int(rng.choice(len(keys), p=p / p.sum()))]

    def _concept(self, rng: np.random.Generator, name: str) -> Concept:
        return renamed(self.concepts[int(rng.integers(len(self.concepts)))], name)

    def _names(self, rng: np.random.Generator, n: int) -> list[str]:
        return [NAME_POOL[int(k)] for k in rng.choice(len(NAME_POOL), size=n, replace=False)]

    def _keep(self, rng: np.random.Generator, n_concepts: int = 1, ref: Scene | None = None) -> np.ndarray | None:
        """All tokens or a random 10–100 % (with several concepts, 10–50 %: shorter contexts); with
        `object_memory`, that share of memories keeps the 10–30 % of tokens that cover the concept most in its
        reference view `ref` (a memory made the way a perfect selector would make it)."""
        if ref is not None and self.cfg.object_memory and rng.random() < self.cfg.object_memory:
            return oracle_keep(ref, subject_index(ref), float(rng.uniform(0.1, 0.3)))
        if n_concepts == 1 and rng.random() < self.cfg.full_memory:
            return None
        top = 1.0 if n_concepts == 1 else 0.5
        return random_keep(rng, self.n_tokens, float(rng.uniform(0.1, top)))

    def _scene(self, rng: np.random.Generator) -> Scene:
        """An ordinary scene, or now and then a concept scene (so marks and two-tone objects are named)."""
        if rng.random() < self.cfg.concept_scene_share:
            c = self._concept(rng, "bix")
            kind = ("positive", "hard_negative", "easy_negative", "distractor_only")[int(rng.integers(4))]
            s = self.world.concept_query(c, kind, int(rng.integers(1 << 30)))
            return _unnamed(s)
        return self.world.scene(int(rng.integers(1 << 30)))

    def _reference(self, rng: np.random.Generator, concept: Concept) -> Scene:
        clutter = bool(rng.random() < self.cfg.clutter)
        # reference views are one per (concept, view, clutter): vary the view number for variety
        return self.world.reference_views(concept, n_views=1 + int(rng.integers(4)), clutter=clutter)[-1]

    def _query_kind(self, rng: np.random.Generator, progress: float) -> str:
        if rng.random() < self.cfg.positive:
            return "positive"
        hard = self.cfg.hard_start + (self.cfg.hard_end - self.cfg.hard_start) * progress
        if rng.random() < hard:
            return "hard_negative"
        return "easy_negative" if rng.random() < 0.5 else "distractor_only"

    # -- single-image tasks ------------------------------------------------------------------------

    def single(self, rng: np.random.Generator, images: list[np.ndarray]) -> Example:
        task = self._pick(rng, self.cfg.single)
        if task in ("subject", "coverage"):
            if rng.random() < 0.6:
                c = self._concept(rng, "bix")
                scene = self._reference(rng, c)
            else:
                scene = self.world_one.scene(int(rng.integers(1 << 30)))
            k = subject_index(scene)
            images.append(scene.image)
            if task == "subject":
                answer = subject_keywords(scene.objects[k])
                prompt = SUBJECT_PROMPT
            else:
                answer = cap.coverage_answer(scene.coverage(k))
                prompt = COVERAGE_PROMPT
            return Example([Visual(len(images) - 1), prompt], answer, task)
        scene = self._scene(rng)
        images.append(scene.image)
        if task == "caption":
            return Example([Visual(len(images) - 1), CAPTION_PROMPT], canonical_caption(scene), task)
        qs = [q for q in scene.questions if q.kind != "coverage"]
        p = np.array([self.cfg.vqa_kinds.get(q.kind, 1.0) for q in qs], dtype=float)
        q = qs[int(rng.choice(len(qs), p=p / p.sum()))] if self.cfg.vqa_kinds else qs[int(rng.integers(len(qs)))]
        return Example([Visual(len(images) - 1), q.question], q.answer, f"vqa_{q.kind}")

    # -- in-context tasks --------------------------------------------------------------------------

    def incontext(self, rng: np.random.Generator, images: list[np.ndarray], progress: float) -> Example:
        task = self._pick(rng, self.cfg.incontext)
        n_concepts = int(rng.integers(2, MAX_CONCEPTS + 1)) if task == "multi" else 1
        names = self._names(rng, n_concepts)
        concepts = [self._concept(rng, n) for n in names]
        pieces: list[str | Visual] = []
        for c in concepts:
            ref = self._reference(rng, c)
            images.append(ref.image)
            pieces += [Visual(len(images) - 1, self._keep(rng, n_concepts, ref)), intro(c.name)]
        weight, kind = 1.0, "multi"
        asked = concepts[int(rng.integers(n_concepts))]
        if task == "multi" and rng.random() < 0.6:
            present = [bool(rng.random() < 0.5) for _ in concepts]
            if not any(present):
                present[int(rng.integers(n_concepts))] = True
            query = self.world.multi_concept_scene(concepts, present, int(rng.integers(1 << 30)))
        else:
            kind = self._query_kind(rng, progress)
            query = self.world.concept_query(asked, kind, int(rng.integers(1 << 30)))
            if kind == "hard_negative":
                weight = self.cfg.hard_weight
        images.append(query.image)
        pieces.append(Visual(len(images) - 1, None, token_labels(query, names)))
        if task == "personal":
            pieces.append(CAPTION_PROMPT)
            stress = tuple(c.name for c in concepts if c.name in query.contains)
            return Example(pieces, canonical_caption(query, personal=True), "personal", weight, {"kind": kind},
                           stress if self.cfg.name_weight != 1.0 else ())
        pieces.append(presence_question(asked.name))
        answer = "yes" if asked.name in query.contains else "no"
        return Example(pieces, answer, "recognise" if task != "multi" else "multi", weight, {"kind": kind})


def _unnamed(scene: Scene) -> Scene:
    """A concept scene as an ordinary scene: objects keep their looks but lose their names."""
    from dataclasses import replace

    objects = [replace(o, name=None) for o in scene.objects]
    return replace(scene, objects=objects, contains=frozenset())

