"""Training targets of the point head, from ShapesWorld scenes: per-word boxes of captions, and referring
expressions with the referred object's box.

Two ways to get a caption word's target:

- `"box"`: the ShapesWorld ground truth. A noun-phrase word ("a", "small", "red", "striped", "circle")
  gets its object's box; a relation word ("left", "above") the union of the two objects' boxes; "of"
  and "." get none (`Scene.word_boxes` semantics, on the caption the micro VLM is trained to write:
  objects from left to right).
- `"trace"`: as in Localized Narratives, where annotators speak while moving the mouse over what they
  describe. `simulate_trace` draws such a mouse trace: it dwells on each object in the order the
  caption mentions them, for as long as the object's words take to say, wandering around the object's
  centre, and glides to the next object during the relation words; the mouse runs ahead of or behind
  the voice by a random lag, with jitter. Words are then aligned to the trace *by relative position*
  (word i of n ↔ the trace's time span [i/n, (i+1)/n)), and a word's target is the box of its trace
  segment. Every word gets a target, and targets are noisy, as in the paper's data.

Referring expressions (`refer_example`) are a task of their own, as in PixelLLM's referring configs: the
prompt asks `where is <expression> ?`, the expression is teacher-forced as the answer and ends with the
end-of-sequence token, it carries no caption loss, and only its *last* token (the one the end-of-sequence
token follows: the official `point_output_ignore='^end-1'`) has a target: the object's box, as the token's
two corners. The other expression tokens have none.

Boxes are in pixels, (x0, y0, x1, y1) with exclusive ends; `normalise` turns them into [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from egokit.data import captions as cap
from egokit.data.scenes import CaptionWord, Scene, SceneObject
from egokit.errors import InputError

Box = tuple[float, float, float, float]
MODES = ("box", "trace")
CAPTION_PROMPT = "describe the image ."


def refer_prompt(expression: str) -> str:
    """The prompt that `refer` teacher-forces an expression after (the micro VLM's position question)."""
    return f"where is {expression.strip()} ?"


@dataclass
class Example:
    """One training example: prompt, answer words, a target box per word (None: no target) and whether the
    answer's tokens carry the caption loss (captions do; teacher-forced referring expressions do not).

    last_token_box: a referring expression's target, which only the answer's last token gets (the token
                    before the end-of-sequence token; every word's own box in `boxes` is then None).
    answer_box:     optional target of the *answer position* (the prompt's last token, where the model
                    starts its answer); not PixelLLM's rule, used only by the recipe's `answer_position`."""

    prompt: str
    words: list[str]
    boxes: list[Box | None]
    caption_loss: bool
    image: int  # index of the image in the batch
    last_token_box: Box | None = None
    answer_box: Box | None = None


def canonical_objects(scene: Scene) -> list[SceneObject]:
    """The objects in the order the micro VLM describes them: left to right (then top to bottom)."""
    return sorted(scene.objects, key=lambda o: (round(o.center[0], 3), round(o.center[1], 3)))


def caption_words(scene: Scene) -> tuple[list[CaptionWord], list[SceneObject]]:
    """The canonical caption's structured words and the objects their `ref`s index."""
    objects = canonical_objects(scene)
    return list(cap.caption_tokens(objects)), objects


def box_targets(words: Sequence[CaptionWord], objects: Sequence[SceneObject]) -> list[Box | None]:
    """Per-word ground-truth boxes (module docstring, mode "box")."""
    out: list[Box | None] = []
    for w in words:
        if w.ref is None:
            out.append(None)
        elif w.role == "relation" and w.ref2 is not None:
            a, b = objects[w.ref].box, objects[w.ref2].box
            out.append((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
        else:
            out.append(tuple(float(v) for v in objects[w.ref].box))  # type: ignore[arg-type]
    return out


def simulate_trace(words: Sequence[CaptionWord], objects: Sequence[SceneObject], size: int,
                   rng: np.random.Generator, per_word: int = 8, max_lag: float = 0.5,
                   jitter: float = 1.0) -> np.ndarray:
    """A simulated mouse trace (n_words * per_word, 2) in pixels, sampled at even time steps (docstring)."""
    n = len(words)
    if n == 0:
        raise InputError("cannot draw a trace for an empty caption")
    # where the mouse *should* be while each word is spoken: its object's centre, or between two objects
    anchors = []
    for w in words:
        if w.ref is None:
            anchors.append(None)
        elif w.role == "relation" and w.ref2 is not None:
            anchors.append(("move", w.ref, w.ref2))
        else:
            anchors.append(("dwell", w.ref))
    # fill words with no object (".", "of") with their neighbours' intent
    for i in range(n):
        if anchors[i] is None:
            j = next((k for k in range(i - 1, -1, -1) if anchors[k] is not None), None)
            a = anchors[j] if j is not None else next((a for a in anchors if a is not None), None)
            anchors[i] = ("dwell", a[2]) if a is not None and a[0] == "move" else a  # arrived after a glide
    durations = rng.uniform(0.6, 1.4, size=n)  # the voice's pace varies; the alignment assumes it does not
    ends = np.cumsum(durations)
    lag = rng.uniform(-max_lag, max_lag) * float(durations.mean())  # > 0: the mouse is late
    steps = n * per_word
    pts = np.zeros((steps, 2))
    phase = rng.uniform(0, 2 * np.pi, size=len(objects))
    turns = rng.uniform(0.6, 1.4, size=len(objects))
    for s in range(steps):
        tau = (s + 0.5) / steps * float(ends[-1]) - lag  # speech time the mouse is at
        i = int(np.clip(np.searchsorted(ends, tau, side="right"), 0, n - 1))
        frac = float(np.clip((tau - (ends[i] - durations[i])) / durations[i], 0.0, 1.0))
        t = i + frac
        a = anchors[i]
        if a is None:
            pts[s] = (size / 2, size / 2)
            continue
        if a[0] == "move":
            p, q = objects[a[1]], objects[a[2]]
            c = np.array(p.center) + frac * (np.array(q.center) - np.array(p.center))
        else:
            o = objects[a[1]]
            k = a[1]
            r = 0.3 * max(2.0, min(o.box[2] - o.box[0], o.box[3] - o.box[1]))
            angle = phase[k] + turns[k] * 2 * np.pi * t / 5
            c = np.array(o.center) + r * np.array([np.cos(angle), np.sin(angle)])
        pts[s] = c + rng.normal(0, jitter, size=2)
    return np.clip(pts, 0, size - 1)


def trace_targets(words: Sequence[CaptionWord], objects: Sequence[SceneObject], size: int,
                  rng: np.random.Generator, per_word: int = 8) -> tuple[list[Box | None], np.ndarray]:
    """Per-word boxes from a simulated trace aligned by relative position; returns (boxes, trace)."""
    trace = simulate_trace(words, objects, size, rng, per_word=per_word)
    n, steps = len(words), len(trace)
    out: list[Box | None] = []
    for i in range(n):
        seg = trace[int(np.floor(i * steps / n)):max(int(np.floor(i * steps / n)) + 1, int(np.floor((i + 1) * steps / n)))]
        x0, y0 = seg.min(0)
        x1, y1 = seg.max(0) + 1.0
        out.append((float(x0), float(y0), float(x1), float(y1)))
    return out, trace


def caption_example(scene: Scene, image: int, mode: str = "box", rng: np.random.Generator | None = None) -> Example:
    """The canonical caption of `scene` with per-word targets of the given mode."""
    if mode not in MODES:
        raise InputError(f"unknown target mode {mode!r}; choose one of {', '.join(MODES)}")
    words, objects = caption_words(scene)
    if mode == "box":
        boxes = box_targets(words, objects)
    else:
        boxes, _ = trace_targets(words, objects, scene.size, rng or np.random.default_rng(0))
    return Example(CAPTION_PROMPT, [w.text for w in words], boxes, True, image)


def referring_expressions(scene: Scene) -> list[tuple[str, int]]:
    """(expression, object index) for every object that one of ShapesWorld's referring phrasings picks
    out alone ("the red circle", "the large red circle", ...)."""
    out = []
    for i in range(len(scene.objects)):
        words = cap.referring_expression(scene.objects, i)
        if words is not None:
            out.append((" ".join(words), i))
    return out


def refer_example(scene: Scene, image: int, rng: np.random.Generator, answer_position: bool = False) -> Example | None:
    """A referring expression of a random object of `scene` (module docstring): no caption loss, and only the
    expression's last token targets the object's box. answer_position: the prompt's last token also targets
    it (not PixelLLM's rule)."""
    options = referring_expressions(scene)
    if not options:
        return None
    text, i = options[int(rng.integers(len(options)))]
    box: Box = tuple(float(v) for v in scene.objects[i].box)  # type: ignore[assignment]
    words = text.split()
    return Example(refer_prompt(text), words, [None] * len(words), False, image, last_token_box=box,
                   answer_box=box if answer_position else None)


def normalise(box: Box, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A pixel box as fractions of an image of (height, width) `size`."""
    h, w = size
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
