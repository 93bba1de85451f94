"""Captions, questions and foils of ShapesWorld scenes, from a small fixed grammar.

Caption grammar (every word is in `egokit.data.vocab.WORDS`):

    caption  := np (relation np)* "."          |  "an empty image ."
    np       := "a" size colours [pattern] shape ["with" "a" mark_color mark]
    colours  := colour | colour "and" colour   (two-tone objects have no pattern word)
    relation := "left" "of" | "right" "of" | "above" | "below"

Objects are mentioned in order and each relation links an object with the next one ("a large red
striped circle left of a small blue solid square above a small green dotted triangle": the circle is left
of the square, the square is above the triangle). A relation is chosen along the axis where the two
centres are furthest apart, so it is true by centres with a clear margin.

Truth (`caption_holds`) is existential: a caption is true of a scene when its noun phrases can be matched
to distinct objects whose attributes they state and whose centres satisfy the relations (strictly:
"left of" means a smaller x). A foil swaps exactly one word so that no such match exists.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from egokit.data.sampling import randint
from egokit.data.scenes import QA, CaptionWord, SceneObject, personalize
from egokit.data.vocab import (
    COLORS,
    PATTERNS,
    RELATION_OPPOSITE,
    SHAPE_PLURALS,
    SHAPES,
    SIZES,
)
from egokit.errors import InputError

if TYPE_CHECKING:
    from egokit.data.scenes import Scene

#: The kinds of foil: the role of the swapped word.
FOIL_KINDS: tuple[str, ...] = ("colour", "shape", "pattern", "size", "relation")
_KIND_ALIASES = {"color": "colour", "colour": "colour", "shape": "shape", "pattern": "pattern",
                 "size": "size", "relation": "relation"}

#: Roles whose words state an attribute of one object.
_ATTRIBUTE_ROLES = ("colour", "shape", "pattern", "size", "mark")

Allowed = Callable[[frozenset], bool]


def _always(_: frozenset) -> bool:
    return True


# ---------------------------------------------------------------------------------------------- captions


def noun_phrase(i: int, obj: SceneObject) -> list[CaptionWord]:
    """The words describing object `i` ("a large red striped circle"); every word refers to `i`."""
    words = [CaptionWord("a", "function", i), CaptionWord(obj.size, "size", i), CaptionWord(obj.color, "colour", i)]
    if obj.color2 is not None:
        words += [CaptionWord("and", "function", i), CaptionWord(obj.color2, "colour", i)]
    else:
        words.append(CaptionWord(obj.pattern, "pattern", i))
    words.append(CaptionWord(obj.shape, "shape", i))
    if obj.mark is not None:
        words += [CaptionWord("with", "function", i), CaptionWord("a", "function", i),
                  CaptionWord(obj.mark_color or "black", "mark", i), CaptionWord(obj.mark, "mark", i)]
    return words


def relation_word(a: SceneObject, b: SceneObject) -> str:
    """The relation of `a` to `b` along the axis where their centres are furthest apart."""
    dx = b.center[0] - a.center[0]
    dy = b.center[1] - a.center[1]
    if abs(dx) >= abs(dy):
        return "left" if dx > 0 else "right"
    return "above" if dy > 0 else "below"


def relation_holds(word: str, a: SceneObject, b: SceneObject) -> bool:
    """Whether `a <word> b` is true by centres (strict inequality)."""
    (ax, ay), (bx, by) = a.center, b.center
    return {"left": ax < bx, "right": ax > bx, "above": ay < by, "below": ay > by}[word]


def caption_tokens(objects: Sequence[SceneObject]) -> tuple[CaptionWord, ...]:
    """The structured caption of a list of objects (grammar in the module docstring)."""
    if not objects:
        return (CaptionWord("an", "function"), CaptionWord("empty", "function"),
                CaptionWord("image", "function"), CaptionWord(".", "function"))
    words = noun_phrase(0, objects[0])
    for i in range(1, len(objects)):
        rel = relation_word(objects[i - 1], objects[i])
        words.append(CaptionWord(rel, "relation", i - 1, i))
        if rel in ("left", "right"):
            words.append(CaptionWord("of", "function"))
        words += noun_phrase(i, objects[i])
    words.append(CaptionWord(".", "function"))
    return tuple(words)


# ---------------------------------------------------------------------------------------------- truth


def _constraints(tokens: Sequence[CaptionWord]) -> tuple[dict[int, list[CaptionWord]], list[CaptionWord]]:
    attrs: dict[int, list[CaptionWord]] = {}
    relations: list[CaptionWord] = []
    for w in tokens:
        if w.role == "relation":
            relations.append(w)
        elif w.ref is not None:
            attrs.setdefault(w.ref, [])
            if w.role in _ATTRIBUTE_ROLES or w.role == "name":
                attrs[w.ref].append(w)
    return attrs, relations


def word_true_of(word: CaptionWord, obj: SceneObject) -> bool:
    """Whether an attribute word (colour, shape, pattern, size, mark, name) is true of an object."""
    role, t = word.role, word.text
    if role == "colour":
        return t in obj.colors
    if role == "shape":
        return t == obj.shape
    if role == "pattern":
        return t == obj.pattern
    if role == "size":
        return t == obj.size
    if role == "mark":
        return t in (obj.mark, obj.mark_color)
    if role == "name":
        return t == obj.name
    return True


def caption_holds(tokens: Sequence[CaptionWord], objects: Sequence[SceneObject]) -> bool:
    """Whether a structured caption is true of the objects (existential reading, module docstring)."""
    attrs, relations = _constraints(tokens)
    refs = sorted(attrs)
    if len(refs) > len(objects):
        return False
    fits = {r: [j for j, o in enumerate(objects) if all(word_true_of(w, o) for w in attrs[r])] for r in refs}
    for choice in itertools.product(*(fits[r] for r in refs)):
        if len(set(choice)) != len(choice):
            continue
        assign = dict(zip(refs, choice))
        if all(relation_holds(w.text, objects[assign[w.ref]], objects[assign[w.ref2]]) for w in relations):
            return True
    return False


def caption_true_as_built(tokens: Sequence[CaptionWord], objects: Sequence[SceneObject]) -> bool:
    """Whether every attribute word is true of the object it refers to, and every relation of its pair."""
    for w in tokens:
        if w.role == "relation":
            if not relation_holds(w.text, objects[w.ref], objects[w.ref2]):
                return False
        elif w.ref is not None and not word_true_of(w, objects[w.ref]):
            return False
    return True


# ---------------------------------------------------------------------------------------------- foils


@dataclass(frozen=True)
class Foil:
    """A caption with exactly one word swapped so that it is false of the scene.

    caption: the foiled caption; words: its words; index: position of the swapped word in `words`;
    kind: colour, shape, pattern, size or relation; original / replacement: the word before / after.
    roles: the role of each word (as in the original caption).
    """

    caption: str
    words: list[str]
    index: int
    kind: str
    original: str
    replacement: str
    roles: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"caption": self.caption, "words": self.words, "index": self.index, "kind": self.kind,
                "original": self.original, "replacement": self.replacement, "roles": self.roles}


@dataclass(frozen=True)
class MultiFoil:
    """A caption with several words swapped: `indices[k]` was `originals[k]`, is now `replacements[k]`."""

    caption: str
    words: list[str]
    indices: list[int]
    kinds: list[str]
    originals: list[str]
    replacements: list[str]
    roles: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"caption": self.caption, "words": self.words, "indices": self.indices, "kinds": self.kinds,
                "originals": self.originals, "replacements": self.replacements, "roles": self.roles}


def normalize_foil_kind(kind: str) -> str:
    """'color' or 'colour' → 'colour'; other kinds as they are; unknown kinds raise `InputError`."""
    k = _KIND_ALIASES.get(str(kind).lower())
    if k is None:
        raise InputError(f"unknown foil kind {kind!r}: use one of {', '.join(FOIL_KINDS)}")
    return k


def _swap(tokens: Sequence[CaptionWord], pos: int, text: str) -> list[CaptionWord]:
    out = list(tokens)
    w = out[pos]
    out[pos] = CaptionWord(text, w.role, w.ref, w.ref2)
    return out


def _replacements(word: CaptionWord, obj: SceneObject | None, np_words: list[CaptionWord],
                  allowed: Allowed) -> list[str]:
    """Words that could replace `word` and are false of the object it refers to."""
    role = word.role
    if role == "relation":
        return [RELATION_OPPOSITE[word.text]]
    assert obj is not None
    if role == "colour":
        stated = {w.text for w in np_words if w.role == "colour"}
        pool = [c for c in COLORS if c not in obj.colors and c not in stated]
    elif role == "shape":
        pool = [s for s in SHAPES if s != obj.shape]
    elif role == "pattern":
        pool = [p for p in PATTERNS if p != obj.pattern]
    elif role == "size":
        pool = [s for s in SIZES if s != obj.size]
    else:
        return []
    out = []
    for new in pool:
        values = frozenset((w.text if w is not word else new) for w in np_words
                           if w.role in ("colour", "shape", "pattern", "size"))
        if allowed(values):
            out.append(new)
    return out


def foil_candidates(tokens: Sequence[CaptionWord], objects: Sequence[SceneObject],
                    allowed: Allowed = _always) -> list[tuple[int, str, str]]:
    """Every single swap `(position, kind, replacement)` that makes the caption false of the objects.

    `allowed(values)` filters replacements by the set of attribute words the swapped noun phrase would
    state (used to keep held-out values out of the train split)."""
    by_ref: dict[int, list[CaptionWord]] = {}
    for w in tokens:
        if w.ref is not None and w.role != "relation":
            by_ref.setdefault(w.ref, []).append(w)
    out = []
    for pos, w in enumerate(tokens):
        if w.role not in FOIL_KINDS:
            continue
        obj = objects[w.ref] if (w.ref is not None and w.role != "relation") else None
        for new in _replacements(w, obj, by_ref.get(w.ref, []), allowed):
            if not caption_holds(_swap(tokens, pos, new), objects):
                out.append((pos, w.role, new))
    return out


def order_swap(tokens: Sequence[CaptionWord], objects: Sequence[SceneObject],
               rng: np.random.Generator) -> str | None:
    """The caption with the noun phrases of two neighbouring objects swapped and every other word kept
    ("a red circle left of a blue square" → "a blue square left of a red circle"), when that makes it
    false of the objects; None when no such swap does (one object, or every swap keeps it true). Not a
    single-word foil: a hard negative that only the objects' order tells apart (the micro CLIP's recipe)."""
    phrases: dict[int, list[CaptionWord]] = {}
    skeleton: list[CaptionWord | int] = []  # words outside noun phrases, and the index of each noun phrase
    for w in tokens:
        if w.ref is not None and w.role != "relation":
            if not skeleton or skeleton[-1] != w.ref:
                skeleton.append(w.ref)
            phrases.setdefault(w.ref, []).append(w)
        else:
            skeleton.append(w)
    pairs = [j for j in range(len(phrases) - 1) if j in phrases and j + 1 in phrases]
    for j in rng.permutation(pairs).tolist() if pairs else []:
        source = {j: j + 1, j + 1: j}
        swapped: list[CaptionWord] = []
        for item in skeleton:
            if isinstance(item, int):
                swapped += [CaptionWord(w.text, w.role, item, w.ref2) for w in phrases[source.get(item, item)]]
            else:
                swapped.append(item)
        if not caption_holds(swapped, objects):
            return " ".join(w.text for w in swapped)
    return None


def hard_negatives(tokens: Sequence[CaptionWord], objects: Sequence[SceneObject], rng: np.random.Generator,
                   allowed: Allowed = _always) -> list[tuple[str, str]]:
    """(kind, caption) pairs: one random foil of every kind this caption allows (`FOIL_KINDS`) and, with
    two objects or more, the `order_swap` (kind "order"); the candidates are computed once."""
    by_kind: dict[str, list[tuple[int, str, str]]] = {}
    for c in foil_candidates(tokens, objects, allowed):
        by_kind.setdefault(c[1], []).append(c)
    out = []
    for kind in FOIL_KINDS:
        if kind in by_kind:
            pos, _, new = by_kind[kind][int(rng.integers(len(by_kind[kind])))]
            out.append((kind, " ".join(w.text for w in _swap(tokens, pos, new))))
    swapped = order_swap(tokens, objects, rng)
    if swapped is not None:
        out.append(("order", swapped))
    return out


def as_generator(rng: np.random.Generator | int | None, default: Sequence[int]) -> np.random.Generator:
    """A Generator as given, one seeded with an int, or (None) one seeded with `default`."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(list(default))
    return np.random.default_rng(int(rng))


def make_foil(tokens: Sequence[CaptionWord], objects: Sequence[SceneObject], kind: str | None,
              rng: np.random.Generator, allowed: Allowed = _always) -> Foil:
    """One foil: a random kind among those possible (or `kind`), then a random swap of that kind."""
    cands = foil_candidates(tokens, objects, allowed)
    if kind is not None:
        kind = normalize_foil_kind(kind)
        cands = [c for c in cands if c[1] == kind]
    if not cands:
        what = f"a {kind} foil" if kind else "a foil"
        raise InputError(f"cannot make {what} for this scene (no swappable word makes the caption false): "
                         "pick another kind or another scene")
    kinds = sorted({c[1] for c in cands}, key=FOIL_KINDS.index)
    chosen_kind = kinds[int(rng.integers(len(kinds)))]
    of_kind = [c for c in cands if c[1] == chosen_kind]
    pos, k, new = of_kind[int(rng.integers(len(of_kind)))]
    words = [w.text for w in _swap(tokens, pos, new)]
    return Foil(caption=" ".join(words), words=words, index=pos, kind=k, original=tokens[pos].text,
                replacement=new, roles=[w.role for w in tokens])


def make_multi_foil(tokens: Sequence[CaptionWord], objects: Sequence[SceneObject], n_errors: int,
                    rng: np.random.Generator, allowed: Allowed = _always) -> MultiFoil:
    """`n_errors` swaps at distinct positions; each is a valid single foil on its own, each swapped word
    is false of its object, and the whole caption is false of the scene."""
    if n_errors < 1:
        raise InputError(f"n_errors must be at least 1, got {n_errors}")
    cands = foil_candidates(tokens, objects, allowed)
    positions = sorted({c[0] for c in cands})
    if len(positions) < n_errors:
        raise InputError(f"this caption has only {len(positions)} swappable words, cannot make {n_errors} "
                         "errors: ask for fewer or use a scene with more objects")
    by_pos: dict[int, list[tuple[int, str, str]]] = {}
    for c in cands:
        by_pos.setdefault(c[0], []).append(c)
    for _ in range(32):
        picked = sorted(rng.choice(len(positions), size=n_errors, replace=False).tolist())
        swaps = []
        for j in picked:
            opts = by_pos[positions[j]]
            swaps.append(opts[int(rng.integers(len(opts)))])
        new_tokens = list(tokens)
        for pos, _, new in swaps:
            new_tokens = _swap(new_tokens, pos, new)
        if not caption_holds(new_tokens, objects):
            words = [w.text for w in new_tokens]
            return MultiFoil(caption=" ".join(words), words=words, indices=[s[0] for s in swaps],
                             kinds=[s[1] for s in swaps], originals=[tokens[s[0]].text for s in swaps],
                             replacements=[s[2] for s in swaps], roles=[w.role for w in tokens])
    raise InputError("could not find a set of swaps that keeps the caption false: use another scene")


# ---------------------------------------------------------------------------------------------- questions


def _colour_words(obj: SceneObject) -> list[str]:
    return [obj.color] if obj.color2 is None else [obj.color, "and", obj.color2]


_REFERRING_ORDERS = (("color", "shape"), ("size", "color", "shape"), ("color", "pattern", "shape"),
                     ("size", "color", "pattern", "shape"))


def _matches(obj: SceneObject, ref: SceneObject, attrs: Sequence[str]) -> bool:
    for a in attrs:
        if a == "color":
            if set(obj.colors) != set(ref.colors):
                return False
        elif getattr(obj, a) != getattr(ref, a):
            return False
    return True


def referring_expression(objects: Sequence[SceneObject], i: int, skip: str | None = None) -> list[str] | None:
    """The shortest of a few fixed phrasings ("the red circle", "the large red circle", ...) that picks
    out object `i` alone, without naming attribute `skip` (then the noun is "object"); None if none does."""
    obj = objects[i]
    for order in _REFERRING_ORDERS:
        attrs = [a for a in order if a != skip and not (a == "pattern" and obj.color2 is not None)]
        if sum(_matches(o, obj, attrs) for o in objects) != 1:
            continue
        words = ["the"]
        for a in attrs:
            words += _colour_words(obj) if a == "color" else [getattr(obj, a)]
        if skip == "shape":
            words.append("object")
        return words
    return None


def position_word(center: tuple[float, float], size: int) -> str:
    """Coarse position in a 3×3 grid: "top left", "top", ..., "center", ..., "bottom right"."""
    x, y = center
    col = "left" if x < size / 3 else ("right" if x >= 2 * size / 3 else "")
    row = "top" if y < size / 3 else ("bottom" if y >= 2 * size / 3 else "")
    return " ".join(p for p in (row, col) if p) or "center"


def coverage_answer(percent: float) -> str:
    """A coverage percentage rounded to the nearest 10 (at least "10"), as a vocabulary word."""
    return str(int(min(100, max(10, 10 * round(percent / 10.0)))))


def make_questions(objects: Sequence[SceneObject], size: int, rng: np.random.Generator) -> list[QA]:
    """Questions with answers about a scene: a count, then per kind (color, shape, pattern, position,
    yesno) one question about a random object that a referring expression can pick out."""
    qs = [QA("how many objects are there ?", str(len(objects)), "count")]
    if not objects:
        qs.append(QA("is there a " + " ".join(_random_np(rng)) + " ?", "no", "yesno"))
        return qs
    n = len(objects)
    shape = SHAPES[randint(rng, 0, len(SHAPES))]
    qs.append(QA(f"how many {SHAPE_PLURALS[shape]} are there ?", str(sum(o.shape == shape for o in objects)),
                 "count"))
    for kind in ("color", "shape", "pattern", "position"):
        i = randint(rng, 0, n)
        if kind == "pattern" and objects[i].color2 is not None:
            continue
        ref = referring_expression(objects, i, skip=None if kind == "position" else kind)
        if ref is None:
            continue
        phrase = " ".join(ref)
        if kind == "position":
            qs.append(QA(f"where is {phrase} ?", position_word(objects[i].center, size), kind, i))
        else:
            answer = " ".join(_colour_words(objects[i])) if kind == "color" else getattr(objects[i], kind)
            qs.append(QA(f"what {kind} is {phrase} ?", answer, kind, i))
    qs.append(_existence_question(objects, rng))
    if n >= 2:
        i = randint(rng, 0, n)
        j = (i + randint(rng, 1, n)) % n
        ri, rj = referring_expression(objects, i), referring_expression(objects, j)
        if ri is not None and rj is not None:
            word = ("left", "right", "above", "below")[randint(rng, 0, 4)]
            rel = f"{word} of" if word in ("left", "right") else word
            answer = "yes" if relation_holds(word, objects[i], objects[j]) else "no"
            qs.append(QA(f"is {' '.join(ri)} {rel} {' '.join(rj)} ?", answer, "yesno", i))
    return qs


def _random_np(rng: np.random.Generator) -> list[str]:
    return [COLORS[randint(rng, 0, len(COLORS))], SHAPES[randint(rng, 0, len(SHAPES))]]


def _existence_question(objects: Sequence[SceneObject], rng: np.random.Generator) -> QA:
    """"is there a <colour> <shape> ?", true half of the time when possible."""
    if rng.random() < 0.5:
        o = objects[randint(rng, 0, len(objects))]
        color, shape = o.colors[randint(rng, 0, len(o.colors))], o.shape
    else:
        color, shape = _random_np(rng)
    present = any(color in o.colors and o.shape == shape for o in objects)
    return QA(f"is there a {color} {shape} ?", "yes" if present else "no", "yesno")


def canonical_order(objects: Sequence[SceneObject]) -> list[SceneObject]:
    """Objects from left to right (then top to bottom): the order the micro VLM describes them in."""
    return sorted(objects, key=lambda o: (round(o.center[0], 3), round(o.center[1], 3)))


def canonical_caption(scene: Scene, personal: bool = False) -> str:
    """The scene's caption with objects left to right; `personal`: named objects become their name."""
    objects = canonical_order(scene.objects)
    tokens = caption_tokens(objects)
    if personal:
        tokens = tuple(personalize(tokens, objects))
    return " ".join(w.text for w in tokens)
