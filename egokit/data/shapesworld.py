"""ShapesWorld: a deterministic generator of small RGB scenes with complete ground truth.

Every scene is a pure function of (seed, split, what was asked, index): the same arguments give the same
pixels and the same ground truth on any machine. The splits "train", "val" and "test" draw from disjoint
random streams; personal concepts are partitioned between splits (see `egokit.data.concepts`).

    sw = ShapesWorld(seed=0)                      # 64×64, patch 8 → an 8×8 grid of visual tokens
    s = sw.scene(0)                               # objects, masks, boxes, caption, questions
    f = sw.foil(s)                                # one word swapped, false of the scene
    concepts = sw.concepts(5)                     # personal concepts with names ("bix", "dax", ...)
    refs = sw.reference_views(concepts[0], n_views=2, clutter=True)
    q = sw.concept_query(concepts[0], "hard_negative")   # same shape and colours, another mark
    frames = sw.video(concepts[0], n_frames=6)

Sizes scale with the image: at 64×64, small objects span 12–18 px and large ones 22–28 px; concepts span
18–20 px (small) or 22–28 px (large) so that their mark (≥ 5×5 px) stays visible.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from egokit.data import captions as cap
from egokit.data.concepts import SPLIT_SHARES, Companion, Concept, all_identities, companion_pool, other_marks
from egokit.data.drawing import ObjectSpec, render
from egokit.data.holdout import DEFAULT_HOLDOUT, Holdout
from egokit.data.layout import place, place_near_centre, tracks_clear, trajectory
from egokit.data.options import (
    MAX_SIZE,
    MIN_SIZE,
    SPLITS,
    check_index,
    check_seed,
    check_size,
    check_split,
    parse_require,
    present_concepts,
    present_mask,
)
from egokit.data.sampling import pick as _pick
from egokit.data.sampling import randint
from egokit.data.scenes import QA, CaptionWord, Scene, SceneObject, mask_box
from egokit.data.vocab import (
    COLORS,
    HALVES,
    MARK_COLORS,
    MARKS,
    NAME_POOL,
    PATTERNS,
    SHAPES,
)
from egokit.errors import InputError

QUERY_KINDS: tuple[str, ...] = ("positive", "hard_negative", "easy_negative", "distractor_only")

_SPLIT_ID = {s: i for i, s in enumerate(SPLITS)}
_ANY_SPLIT = 7  # random streams shared by every split (concept identities, companions)
_STREAMS = {name: i for i, name in enumerate((
    "scene", "with", "concept_order", "names", "companions", "reference", "query", "query_variant",
    "multi", "video", "video_frame", "foil", "multi_foil",
))}
_ATTRS = ("shape", "color", "pattern", "size")
_ATTR_VALUES = {"shape": SHAPES, "color": COLORS, "pattern": PATTERNS, "size": ("small", "large")}

# Extent ranges (inclusive, in px at 64×64; scaled with the image side).
_GENERIC_EXTENTS = {"small": (12, 18), "large": (22, 28)}
_CONCEPT_EXTENTS = {"small": (18, 20), "large": (22, 28)}
_REFERENCE_EXTENT = (24, 28)

Foil = cap.Foil
MultiFoil = cap.MultiFoil

__all__ = [
    "DEFAULT_HOLDOUT", "MAX_SIZE", "MIN_SIZE", "QUERY_KINDS", "SPLITS",
    "QA", "CaptionWord", "Companion", "Concept", "Foil", "Holdout", "MultiFoil", "Scene", "SceneObject",
    "ShapesWorld",
]


class ShapesWorld:
    """A deterministic generator of ShapesWorld scenes (see the module docstring).

    seed:        the data set's seed (a non-negative integer).
    size, patch: image side and patch side in pixels (`size` a multiple of `patch`, at least 48).
    split:       "train", "val" or "test": disjoint random streams.
    holdout:     values/combinations the train split never draws (`Holdout`, a mapping, an iterable of
                 values and tuples, "default" for `DEFAULT_HOLDOUT`, or None).
    min_objects, max_objects: how many ordinary objects a scene has (uniform in that range).
    overlap:     let objects overlap (masks are then the visible pixels); off by default.
    noise:       amplitude of the background's per-pixel noise (grey levels).
    """

    def __init__(self, seed: int = 0, size: int = 64, patch: int = 8, split: str = "train",
                 holdout: Holdout | Mapping[str, Any] | Iterable[Any] | str | None = None,
                 max_objects: int = 3, min_objects: int = 1, overlap: bool = False, noise: int = 6) -> None:
        self.seed = check_seed(seed)
        self.size, self.patch = check_size(size, patch)
        self.split = check_split(split)
        self.holdout = Holdout.parse(holdout)
        if not 0 <= min_objects <= max_objects <= 8:
            raise InputError(f"need 0 <= min_objects <= max_objects <= 8, got {min_objects} and {max_objects}")
        if not 0 <= int(noise) <= 30:
            raise InputError(f"noise must be between 0 and 30 grey levels, got {noise}")
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.overlap = bool(overlap)
        self.noise = int(noise)
        scale = self.size / 64.0
        self._generic_extents = _scaled(_GENERIC_EXTENTS, scale)
        self._concept_extents = _scaled(_CONCEPT_EXTENTS, scale)
        self._reference_extent = (round(_REFERENCE_EXTENT[0] * scale), round(_REFERENCE_EXTENT[1] * scale))
        self._concept_order: tuple[int, ...] | None = None

    # ------------------------------------------------------------------------------------------ basics

    def __repr__(self) -> str:
        return (f"ShapesWorld(seed={self.seed}, size={self.size}, patch={self.patch}, split={self.split!r}, "
                f"holdout={self.holdout!r}, max_objects={self.max_objects}, overlap={self.overlap})")

    def config(self) -> dict[str, Any]:
        """The generator's settings as a JSON-able dict (enough to rebuild it)."""
        return {"seed": self.seed, "size": self.size, "patch": self.patch, "split": self.split,
                "holdout": None if self.holdout is None else self.holdout.to_dict(),
                "min_objects": self.min_objects, "max_objects": self.max_objects, "overlap": self.overlap,
                "noise": self.noise}

    def with_split(self, split: str) -> ShapesWorld:
        """The same generator on another split."""
        c = self.config()
        c["split"] = split
        return ShapesWorld(**c)

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the patch grid."""
        return (self.size // self.patch, self.size // self.patch)

    def _rng(self, stream: str, *ints: int, split: str | None = None) -> np.random.Generator:
        split_id = _ANY_SPLIT if split == "*" else _SPLIT_ID[split or self.split]
        return np.random.default_rng([self.seed, split_id, _STREAMS[stream], *(int(v) for v in ints)])

    def is_held_out(self, obj: SceneObject | ObjectSpec | Concept) -> bool:
        """Whether an object (or concept) shows a held-out value or combination."""
        return self.holdout is not None and self.holdout.holds_out(obj.values())

    def _restricted(self, split: str | None = None) -> bool:
        return self.holdout is not None and (split or self.split) == "train"

    # ------------------------------------------------------------------------------------------ objects

    def _extent(self, rng: np.random.Generator, size_word: str, ranges: dict[str, tuple[int, int]]) -> int:
        lo, hi = ranges[size_word]
        return randint(rng, lo, hi + 1)

    def _generic(self, rng: np.random.Generator, fixed: Mapping[str, str] | None = None,
                 split: str | None = None) -> ObjectSpec:
        """A random ordinary object (one colour, a pattern); `fixed` attributes are kept as given.

        In a restricted split, the free attributes are redrawn until the object is not held out."""
        fixed = dict(fixed or {})
        for _ in range(500):
            vals = {a: fixed.get(a) or _pick(rng, _ATTR_VALUES[a]) for a in _ATTRS}
            if not self._restricted(split) or not self.holdout.holds_out(vals.values(), ignore=fixed.values()):
                break
        else:  # pragma: no cover - parse() guarantees allowed values exist
            raise InputError(f"no allowed object has {fixed}: the holdout leaves nothing to draw")
        extent = self._extent(rng, vals["size"], self._generic_extents)
        return ObjectSpec(vals["shape"], vals["color"], vals["pattern"], vals["size"], extent, 0, 0)

    def _concept_spec(self, concept: Concept, rng: np.random.Generator, size_word: str | None = None,
                      extent: int | None = None, name: str | None = "same") -> ObjectSpec:
        if size_word is None:
            size_word = _pick(rng, ("small", "large"))
        if extent is None:
            extent = self._extent(rng, size_word, self._concept_extents)
        return ObjectSpec(concept.shape, concept.color, "solid", size_word, extent, 0, 0, concept.color2,
                          concept.halves, concept.mark, concept.mark_color,
                          concept.name if name == "same" else name)

    # ------------------------------------------------------------------------------------------ scenes

    def scene(self, i: int, require: Mapping[str, str] | Iterable[str] | str | None = None) -> Scene:
        """Scene number `i` of this split (deterministic). With `require`, see `scene_with`."""
        if require is not None:
            return self.scene_with(i, require)
        i = check_index(i)
        rng = self._rng("scene", i)
        n = randint(rng, self.min_objects, self.max_objects + 1)
        specs = place(rng, [self._generic(rng) for _ in range(n)], self.size, self.overlap)
        return self._finish(specs, rng, index=i, source="scene")

    def scenes(self, n: int, start: int = 0) -> Iterator[Scene]:
        """Scenes `start`, ..., `start + n - 1` of this split."""
        if n < 0:
            raise InputError(f"n must be >= 0, got {n}")
        for i in range(start, start + n):
            yield self.scene(i)

    def scene_with(self, i: int, require: Mapping[str, str] | Iterable[str] | str | None = None,
                   **attrs: str) -> Scene:
        """Scene number `i` of a separate stream in which one object has the required attribute values,
        e.g. `scene_with(0, color="pink", shape="hexagon")` or `scene_with(0, ("pink", "hexagon"))`.

        The required values are drawn even when held out (this is how target data for held-out
        attributes is made); the other objects, and that object's other attributes, follow the split's
        holdout rule."""
        i = check_index(i)
        req = parse_require(require, attrs)
        code = [(_ATTR_VALUES[a].index(req[a]) + 1) if a in req else 0 for a in _ATTRS]
        rng = self._rng("with", i, *code)
        n = max(1, int(rng.integers(self.min_objects, self.max_objects + 1)))
        target = self._generic(rng, fixed=req)
        others = [self._generic(rng) for _ in range(n - 1)]
        specs = place(rng, [target], self.size, self.overlap)
        specs += place(rng, others, self.size, self.overlap, placed=specs)
        specs = [specs[k] for k in rng.permutation(len(specs))]
        return self._finish(specs, rng, index=i, source="with")

    def _finish(self, specs: Sequence[ObjectSpec], rng: np.random.Generator, index: int, source: str,
                extra_questions: Sequence[QA] = (), frame: int | None = None,
                background_rng: np.random.Generator | None = None) -> Scene:
        """Draw the objects and build the scene's ground truth, caption and questions."""
        image, masks = render(list(specs), self.size, background_rng or rng, self.noise)
        objects = [_scene_object(s, m) for s, m in zip(specs, masks)]
        tokens = cap.caption_tokens(objects)
        questions = cap.make_questions(objects, self.size, rng) + list(extra_questions)
        contains = frozenset(o.name for o in objects if o.name is not None)
        return Scene(image=image, objects=objects, caption_tokens=tokens, questions=questions, patch=self.patch,
                     seed=self.seed, split=self.split, index=index, source=source, contains=contains,
                     frame=frame)

    # ------------------------------------------------------------------------------------------ foils

    def _allowed(self, split: str) -> cap.Allowed:
        if not self._restricted(split):
            return lambda values: True
        holdout = self.holdout
        return lambda values: not holdout.holds_out(values)

    def _scene_key(self, scene: Scene) -> list[int]:
        return [_SPLIT_ID.get(scene.split, 3), scene.index, zlib.crc32(scene.source.encode()),
                -1 if scene.frame is None else scene.frame]

    def foil(self, scene: Scene, kind: str | None = None, rng: np.random.Generator | int | None = None) -> cap.Foil:
        """The scene's caption with exactly one word swapped (kind: colour, shape, pattern, size, relation;
        None: a random possible kind) so that it is false of the scene. Deterministic per scene unless an
        `rng` (a Generator or an int seed) is given. Raises `InputError` when no such swap exists."""
        kind_code = 0 if kind is None else 1 + cap.FOIL_KINDS.index(cap.normalize_foil_kind(kind))
        g = rng if rng is not None else self._rng("foil", *(k + 1 for k in self._scene_key(scene)), kind_code)
        return cap.make_foil(scene.caption_tokens, scene.objects, kind, cap.as_generator(g, [0]),
                             self._allowed(scene.split))

    def multi_foil(self, scene: Scene, n_errors: int,
                   rng: np.random.Generator | int | None = None) -> cap.MultiFoil:
        """The caption with `n_errors` words swapped at distinct positions (each one a valid foil)."""
        g = rng if rng is not None else self._rng("multi_foil", *(k + 1 for k in self._scene_key(scene)),
                                                  int(n_errors) if n_errors > 0 else 0)
        return cap.make_multi_foil(scene.caption_tokens, scene.objects, int(n_errors), cap.as_generator(g, [0]),
                                   self._allowed(scene.split))

    def hard_negatives(self, scene: Scene, rng: np.random.Generator) -> list[tuple[str, str]]:
        """(kind, caption): a foil of every possible kind and the swapped object order
        (`captions.hard_negatives`), held-out values excluded on a restricted split as in `foil`."""
        return cap.hard_negatives(scene.caption_tokens, scene.objects, rng, self._allowed(scene.split))

    # ------------------------------------------------------------------------------------------ concepts

    def _identity_order(self) -> tuple[int, ...]:
        if self._concept_order is None:
            n = len(all_identities())
            self._concept_order = tuple(self._rng("concept_order", split="*").permutation(n).tolist())
        return self._concept_order

    def concepts(self, n: int, split: str | None = None) -> list[Concept]:
        """`n` personal concepts of a split (default: this generator's split); `concepts(k)` is a prefix of
        `concepts(n)` for k < n. Different splits never share a concept identity; within a list, concepts
        differ in shape or colours as long as such looks remain (then only marks tell some apart). In a
        restricted split, concepts never show a held-out value."""
        split = check_split(split or self.split)
        if not 0 <= n <= len(NAME_POOL):
            raise InputError(f"n must be between 0 and {len(NAME_POOL)} (the size of NAME_POOL), got {n}")
        keys = self._concept_keys(split)
        if len(keys) < n:
            raise InputError(f"only {len(keys)} concepts are available in split {split!r} with this holdout")
        names = [NAME_POOL[k] for k in self._rng("names", split=split).permutation(len(NAME_POOL))]
        identities = all_identities()
        out = []
        for name, key in zip(names, keys[:n]):
            shape, c1, c2, halves, mark, mc = identities[key]
            out.append(Concept(name, shape, c1, c2, halves, mark, mc, self._companions(key, (shape, c1, c2), split)))
        return out

    def all_concepts(self, split: str | None = None) -> list[Concept]:
        """Every concept identity of a split, in the order `concepts(n)` hands them out, for training on
        more concepts than there are names. Names are placeholders that repeat (`NAME_POOL` in turn);
        give each example its own with `dataclasses.replace(concept, name=...)`."""
        split = check_split(split or self.split)
        identities = all_identities()
        out = []
        for k, key in enumerate(self._concept_keys(split)):
            shape, c1, c2, halves, mark, mc = identities[key]
            out.append(Concept(NAME_POOL[k % len(NAME_POOL)], shape, c1, c2, halves, mark, mc,
                               self._companions(key, (shape, c1, c2), split)))
        return out

    def _concept_keys(self, split: str) -> list[int]:
        """Identity keys of a split in the order concepts are handed out: first one per distinct look
        (shape and pair of colours), then the rest; held-out identities dropped in a restricted split."""
        identities = all_identities()
        order = self._identity_order()
        lo, hi = (round(share * len(order)) for share in SPLIT_SHARES[split])
        first, rest, looks = [], [], set()
        for key in order[lo:hi]:
            shape, c1, c2 = identities[key][:3]
            if self._restricted(split) and self.holdout.holds_out((shape, c1, c2, "solid")):
                continue
            look = (shape, frozenset((c1, c2)))
            (rest if look in looks else first).append(key)
            looks.add(look)
        return first + rest

    def _companions(self, key: int, look: tuple[str, str, str], split: str) -> tuple[Companion, ...]:
        rng = self._rng("companions", key, split="*")
        pool = [c for c in companion_pool()
                if not (c.shape == look[0] and c.color in look[1:])
                and not (self._restricted(split) and self.holdout.holds_out((c.shape, c.color, c.pattern)))]
        picks = rng.choice(len(pool), size=2, replace=False)
        return tuple(pool[int(k)] for k in picks)

    def _companion_spec(self, comp: Companion, rng: np.random.Generator, size_word: str | None = None,
                        extent: int | None = None) -> ObjectSpec:
        size_word = size_word or _pick(rng, ("small", "large"))
        extent = extent or self._extent(rng, size_word, self._generic_extents)
        return ObjectSpec(comp.shape, comp.color, comp.pattern, size_word, extent, 0, 0)

    def reference_views(self, concept: Concept, n_views: int = 1, clutter: bool = False) -> list[Scene]:
        """Reference images of a concept: the concept large and near the centre, alone, or (clutter=True)
        off-centre with 1–2 of its companions (always the first one). Each view has a coverage question ("what percentage of the
        image does the subject cover ?") and "is <name> in this image ?"."""
        if n_views < 1:
            raise InputError(f"n_views must be at least 1, got {n_views}")
        views = []
        for v in range(n_views):
            rng = self._rng("reference", concept.key, v, int(bool(clutter)))
            extent = int(rng.integers(self._reference_extent[0], self._reference_extent[1] + 1))
            target = self._concept_spec(concept, rng, "large", extent)
            jitter = (0.22 if clutter else 0.08) * self.size
            specs = [place_near_centre(rng, target, self.size, jitter)]
            if clutter:
                k = int(rng.integers(1, 3))
                for comp in _companions_of(concept, rng)[:k]:
                    got = place(rng, [self._companion_spec(comp, rng)], self.size, False, placed=specs, tries=80)
                    if not got:  # retry as a small object
                        got = place(rng, [self._companion_spec(comp, rng, "small")], self.size, False,
                                    placed=specs, tries=200)
                    specs += got
                specs = [specs[k] for k in rng.permutation(len(specs))]
            scene = self._finish(specs, rng, index=v, source="reference_clutter" if clutter else "reference")
            views.append(_with_questions(scene, _reference_questions(scene, concept)))
        return views

    def concept_query(self, concept: Concept, kind: str = "positive", index: int = 0) -> Scene:
        """A query scene for recognising `concept`.

        positive:        the concept moved and rescaled, among 0–2 ordinary distractors;
        hard_negative:   the same scene with the concept's mark changed (same shape, colours, halves);
        easy_negative:   the same scene with a two-tone marked object of another shape and other colours;
        distractor_only: the same scene with the concept's first companion (shown in every cluttered
                         reference view) instead of the concept.
        The four kinds share their layout for a given `index`, so they differ only at the target object.
        `scene.contains` holds the concept's name only for positives."""
        if kind not in QUERY_KINDS:
            raise InputError(f"unknown query kind {kind!r}: use one of {', '.join(QUERY_KINDS)}")
        index = check_index(index)
        rng = self._rng("query", concept.key, index)
        target = self._concept_spec(concept, rng)
        n_distractors = int(rng.integers(0, 3))
        distractors = [self._generic(rng) for _ in range(n_distractors)]
        placed = place(rng, [target], self.size, self.overlap)
        placed += place(rng, distractors, self.size, self.overlap, placed=placed)
        order = rng.permutation(len(placed))
        variant = self._rng("query_variant", concept.key, index, QUERY_KINDS.index(kind))
        placed[0] = self._substitute(placed[0], concept, kind, variant)
        specs = [placed[k] for k in order]
        scene = self._finish(specs, rng, index=index, source=f"query:{kind}")
        present = "yes" if kind == "positive" else "no"
        return _with_questions(scene, [QA(f"is {concept.name} in this image ?", present, "yesno")])

    def _substitute(self, target: ObjectSpec, concept: Concept, kind: str, rng: np.random.Generator) -> ObjectSpec:
        """The object standing where the concept would be, for each query kind."""
        if kind == "positive":
            return target
        if kind == "hard_negative":
            choices = other_marks(concept.mark, concept.mark_color)
            mark, mc = choices[int(rng.integers(len(choices)))]
            return ObjectSpec(target.shape, target.color, target.pattern, target.size, target.extent, target.x0,
                              target.y0, target.color2, target.halves, mark, mc, None)
        if kind == "easy_negative":
            return self._easy_negative(target, concept, rng)
        comp = _companions_of(concept, rng)[0]  # the companion every cluttered reference view shows
        size_word = "large" if target.extent >= self._generic_extents["large"][0] else "small"
        return ObjectSpec(comp.shape, comp.color, comp.pattern, size_word, target.extent, target.x0, target.y0)

    def _easy_negative(self, target: ObjectSpec, concept: Concept, rng: np.random.Generator) -> ObjectSpec:
        for _ in range(500):
            shape = _pick(rng, [s for s in SHAPES if s != concept.shape])
            c1, c2 = (str(c) for c in rng.choice([c for c in COLORS if c not in concept.colors], 2, replace=False))
            if not (self._restricted() and self.holdout.holds_out((shape, c1, c2, "solid"))):
                break
        return ObjectSpec(shape, c1, "solid", target.size, target.extent, target.x0, target.y0, c2,
                          _pick(rng, HALVES), _pick(rng, MARKS), _pick(rng, MARK_COLORS), None)

    def multi_concept_scene(self, concepts: Sequence[Concept], present: Sequence[str] | Sequence[bool] | None = None,
                            index: int = 0, n_distractors: int | None = None) -> Scene:
        """A scene with several personal concepts: those in `present` (names, or one bool per concept;
        default all, at most 4) plus 0–1 ordinary distractors. Questions ask "is <name> in this image ?"
        for every concept given."""
        index = check_index(index)
        shown = present_concepts(concepts, present)
        if len(shown) > 4:
            raise InputError(f"at most 4 concepts fit in one {self.size}x{self.size} scene, got {len(shown)}")
        bits = [c.key * 2 + int(c in shown) for c in concepts]
        rng = self._rng("multi", index, len(concepts), *bits)
        n_d = int(rng.integers(0, 2)) if n_distractors is None else int(n_distractors)
        for attempt in range(20):
            size_word = "small" if (len(shown) >= 3 or attempt >= 10) else None
            specs = place(rng, [self._concept_spec(c, rng, size_word) for c in shown], self.size, False)
            if len(specs) == len(shown):
                break
        else:
            raise InputError(f"could not fit {len(shown)} concepts in a {self.size}x{self.size} image")
        specs += place(rng, [self._generic(rng) for _ in range(n_d)], self.size, False, placed=specs)
        specs = [specs[k] for k in rng.permutation(len(specs))]
        scene = self._finish(specs, rng, index=index, source="multi_concept")
        extra = [QA(f"is {c.name} in this image ?", "yes" if c in shown else "no", "yesno") for c in concepts]
        return _with_questions(scene, extra)

    # ------------------------------------------------------------------------------------------ video

    def video(self, concept: Concept | None = None, n_frames: int = 6,
              present_frames: Sequence[int] | Sequence[bool] | None = None, index: int = 0,
              n_distractors: int | None = None) -> list[Scene]:
        """A short video: ordinary objects (1–2 by default) and optionally a concept, moving in straight
        lines (1–3 px per frame, bouncing off the borders) over a fixed background. The concept shows in
        `present_frames` (frame numbers or one bool per frame; default a random contiguous run). Each
        frame is a `Scene` with `frame` set; `SceneObject.track` identifies an object across frames."""
        if not 1 <= n_frames <= 64:
            raise InputError(f"n_frames must be between 1 and 64, got {n_frames}")
        index = check_index(index)
        rng = self._rng("video", 0 if concept is None else concept.key + 1, index, n_frames)
        shown = present_mask(present_frames, n_frames, rng) if concept is not None else [False] * n_frames
        n_d = int(rng.integers(1, 3)) if n_distractors is None else int(n_distractors)
        if not 0 <= n_d <= 4 or (concept is None and n_d == 0):
            raise InputError(f"n_distractors must be between {int(concept is None)} and 4, got {n_d}")
        specs = [self._generic(rng) for _ in range(n_d)]
        if concept is not None:
            specs = [self._concept_spec(concept, rng), *specs]
        specs = [replace(s, track=k) for k, s in enumerate(specs)]
        present = [shown if (concept is not None and k == 0) else [True] * n_frames for k in range(len(specs))]
        tracks, present = self._tracks(rng, specs, present, n_frames)
        bg_seed = int(rng.integers(2**63))
        frames = []
        for t in range(n_frames):
            here = [tr[t] for tr, pr in zip(tracks, present) if pr[t]]
            frng = self._rng("video_frame", 0 if concept is None else concept.key + 1, index, n_frames, t)
            scene = self._finish(here, frng, index=index, source="video", frame=t,
                                 background_rng=np.random.default_rng(bg_seed))
            if concept is not None:
                yes = "yes" if shown[t] else "no"
                scene = _with_questions(scene, [QA(f"is {concept.name} in this frame ?", yes, "yesno")])
            frames.append(scene)
        return frames

    def _tracks(self, rng: np.random.Generator, specs: list[ObjectSpec], present: list[list[bool]],
                n_frames: int) -> tuple[list[list[ObjectSpec]], list[list[bool]]]:
        """Straight-line tracks that never collide, with the presence lists of the objects kept: when no
        moving layout is found, the last distractor is left out (the first object always stays)."""
        while True:
            for _ in range(200):
                starts = place(rng, specs, self.size, self.overlap)
                if len(starts) < len(specs):
                    continue
                tracks = []
                for s in starts:
                    v = (0, 0)
                    while abs(v[0]) + abs(v[1]) < 2:  # every object visibly moves
                        v = (randint(rng, -3, 4), randint(rng, -3, 4))
                    tracks.append(trajectory(s, v, n_frames, self.size))
                if tracks_clear(tracks, present, self.overlap):
                    return tracks, present
            if len(specs) == 1:  # pragma: no cover - one object always fits and never collides
                return [[place(rng, specs, self.size)[0]] * n_frames], present
            specs, present = specs[:-1], present[:-1]


# ---------------------------------------------------------------------------------------------- helpers


def _scaled(ranges: dict[str, tuple[int, int]], scale: float) -> dict[str, tuple[int, int]]:
    return {k: (round(lo * scale), round(hi * scale)) for k, (lo, hi) in ranges.items()}


def _scene_object(spec: ObjectSpec, mask: np.ndarray) -> SceneObject:
    return SceneObject(shape=spec.shape, color=spec.color, pattern=spec.pattern, size=spec.size,
                       center=spec.center, box=mask_box(mask), mask=mask, extent=spec.extent, color2=spec.color2,
                       halves=spec.halves, mark=spec.mark, mark_color=spec.mark_color, name=spec.name,
                       track=spec.track)


def _with_questions(scene: Scene, extra: Sequence[QA]) -> Scene:
    return replace(scene, questions=[*scene.questions, *extra])


def _reference_questions(scene: Scene, concept: Concept) -> list[QA]:
    k = next(j for j, o in enumerate(scene.objects) if o.name == concept.name)
    percent = cap.coverage_answer(scene.coverage(k))
    return [QA("what percentage of the image does the subject cover ?", percent, "coverage", k),
            QA(f"is {concept.name} in this image ?", "yes", "yesno", k)]


def _companions_of(concept: Concept, rng: np.random.Generator) -> tuple[Companion, ...]:
    """The concept's companions; a concept built by hand without any gets two random ones."""
    if concept.companions:
        return concept.companions
    pool = [c for c in companion_pool() if not (c.shape == concept.shape and c.color in concept.colors)]
    return tuple(pool[int(k)] for k in rng.choice(len(pool), size=2, replace=False))
