"""Metrics of a point head on ShapesWorld's held-out test split: `egokit pixel eval --json [--seed S]`.

`evaluate(...)` returns a `PixelEvaluation`, whose flat `metrics()` is what `egokit pixel eval --json`
prints; `quick_evaluate(model)` is its smallest honest setting (a few scenes, the shipped head).

The test split is never trained on (the head's recipe draws from the train split); `seed` picks which test
scenes. All on the same scenes:

- `word_in_box`: the head's model generates a caption (greedy, head attached) for each scene. The caption is
  split into noun phrases, phrases are matched one to one with the scene's objects so as to agree most on
  attributes (ties: the left-to-right order the captions use); the *object words* are the size, colour,
  pattern and shape words of matched phrases. Score: the share of object words whose predicted point
  lies inside their object's box. `word_in_box_center_baseline`: the same words, with the image centre
  as every word's point. `word_in_box_teacher_forced` (extra): the true caption teacher-forced instead of
  a generated one (the head alone, without caption errors).
- `refer_p50`: for each object that ShapesWorld's shortest referring phrasing picks out alone ("the red
  circle", "the large red circle", ...), `refer` gives a box by PixelLLM's rule (the two corners at the
  expression's last token, the expression teacher-forced and ended by the end-of-sequence token); a hit
  when its IoU with the object's box is at least 0.5. `refer_p50_center_baseline`: a box of the mean
  training-object size at the image centre. `refer_miou` (extra): the mean IoU. `refer_p50_by_objects.<k>`
  (extra): refer_p50 on the scenes with k objects (with one object, finding it needs no matching of the
  expression).
- `refer_p50_answer_position` / `refer_miou_answer_position` (extra, **not the paper's rule**): the same
  expressions, the box read at the answer position (`refer(..., readout="answer_position")`).
  `refer_p50_token_union` (extra, the kit's earlier rule): the min/max over every expression token's points.
- `refer_base_position_acc` (extra): the same expressions asked to the untouched model as `where is
  <expression> ?` (the VQA question its training had); the share of answers that name the object's cell
  of a 3×3 grid. `refer_p50_base_right` / `_wrong`: refer_p50 on the expressions whose position the model
  named right / wrong. The head reads the model's features, so it can hardly ground an expression that the
  model itself does not.
- `position_probe_error_cells` / `_baseline_cells` (extra): how much absolute position the image tokens
  the language model receives carry (`position_probe`).
- `caption_attr_acc_with_head` / `_without_head`: the micro VLM's caption metric (`egokit.recipes.eval_vlm.
  caption_score`: share of true attributes stated, four per object) of the captions generated with the
  head attached (its tuned copies of the decoder layers swapped in) and by the untouched model.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from egokit.data.scenes import Scene, SceneObject
from egokit.data.vocab import COLORS, PATTERNS, SHAPES, SIZES
from egokit.methods.pixel.head import LAYER_INPUTS, box_from_points, feature_hooks
from egokit.methods.pixel.locate import (
    DEFAULT_HEAD,
    as_head,
    generate_ids,
    loaded_model,
    localize,
    prompt_inputs,
    refer,
    tokenizer_of,
)
from egokit.methods.pixel.targets import CAPTION_PROMPT, caption_words, refer_prompt, referring_expressions
from egokit.results import MetricsEvaluation, flat_metrics

ATTRIBUTE_ROLES = ("size", "colour", "pattern", "shape")
#: the micro zoo model the shipped head (`DEFAULT_HEAD`) was trained on
DEFAULT_MODEL = "micro-vlm"
#: `quick_evaluate`'s test scenes and referring expressions
QUICK_SCENES = 2
QUICK_REFER = 2


class PixelEvaluation(MetricsEvaluation):
    """What `evaluate` returns: the metrics of the module docstring, flat (a nested count such as
    refer_p50 by the number of objects becomes `refer_p50_by_objects.<k>`), and the settings of the run.
    Pictured as a table; saved as one safetensors file (`save` / `load`)."""

    FILE_KIND: ClassVar[str] = "egokit.pixel_evaluation"
    FILE_VERSION: ClassVar[int] = 1
    FILE_WHAT: ClassVar[str | None] = "pixel evaluation"


# ---------------------------------------------------------------------------------------------- helpers


def noun_phrases(words: list[str]) -> list[dict[str, Any]]:
    """Noun phrases of a caption with the word index of each attribute: [{"attrs": {role: (index, word)}}]."""
    phrases: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for k, w in enumerate(words):
        if w in ("a", "an"):
            cur = {"attrs": {}, "colors": []}
            phrases.append(cur)
            continue
        if cur is None:
            continue
        attrs = cur["attrs"]
        if w in SIZES and "size" not in attrs:
            attrs["size"] = (k, w)
        elif w in COLORS and "shape" not in attrs:
            cur["colors"].append((k, w))
        elif w in PATTERNS and "shape" not in attrs:
            attrs["pattern"] = (k, w)
        elif w in SHAPES and "shape" not in attrs:
            attrs["shape"] = (k, w)
    return [p for p in phrases if p["attrs"].get("shape") or p["colors"]]


def _agree(phrase: dict[str, Any], obj: SceneObject) -> int:
    a = phrase["attrs"]
    score = int(a.get("size", (0, None))[1] == obj.size) + int(a.get("shape", (0, None))[1] == obj.shape)
    score += int(a.get("pattern", (0, None))[1] == (obj.pattern if obj.color2 is None else None))
    score += int({w for _, w in phrase["colors"]} == set(obj.colors))
    return score


def match_phrases(phrases: list[dict[str, Any]], objects: list[SceneObject]) -> list[tuple[int, int]]:
    """(phrase, object) pairs, one to one, agreeing most (ties: phrase k ↔ k-th object from the left)."""
    order = sorted(range(len(objects)), key=lambda i: (round(objects[i].center[0], 3), round(objects[i].center[1], 3)))
    rank = {obj: r for r, obj in enumerate(order)}
    k = min(len(phrases), len(objects))
    best: tuple[float, list[tuple[int, int]]] = (-1.0, [])
    for ps in itertools.permutations(range(len(phrases)), k):
        for objs in itertools.permutations(range(len(objects)), k):
            pairs = list(zip(ps, objs))
            score = sum(10 * _agree(phrases[p], objects[o]) + (rank[o] == p) for p, o in pairs)
            if score > best[0]:
                best = (score, pairs)
    return best[1]


def object_words(words: list[str], objects: list[SceneObject]) -> list[tuple[int, int]]:
    """(word index, object index) of the attribute words of a caption's matched noun phrases."""
    phrases = noun_phrases(words)
    out = []
    for p, o in match_phrases(phrases, objects):
        idx = [k for k, _ in phrases[p]["attrs"].values()] + [k for k, _ in phrases[p]["colors"]]
        out += [(k, o) for k in sorted(idx)]
    return out


def inside(point: tuple[float, float], box: tuple[float, ...]) -> bool:
    x, y = point
    return bool(box[0] <= x < box[2] and box[1] <= y < box[3])


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mean_object_size(world_seed: int = 0, n: int = 400) -> tuple[float, float]:
    """Mean (width, height) of object boxes on the train split (the centre baseline's box size)."""
    from egokit.data.shapesworld import ShapesWorld

    sizes = [(o.box[2] - o.box[0], o.box[3] - o.box[1]) for s in ShapesWorld(seed=world_seed, split="train").scenes(n)
             for o in s.objects]
    w, h = np.mean(sizes, axis=0)
    return float(w), float(h)


def center_box(size: int, wh: tuple[float, float]) -> tuple[float, float, float, float]:
    c = size / 2
    return (c - wh[0] / 2, c - wh[1] / 2, c + wh[0] / 2, c + wh[1] / 2)


def position_probe(loaded: Any, n: int = 60, world_seed: int = 0) -> dict[str, float]:
    """How much absolute position the visual tokens the language model receives carry: ridge regression
    from a token's input embedding to its grid cell (row, column), fit on half of `n` validation scenes and
    scored on the other half, as the mean absolute error in cells; the baseline predicts the mean cell.
    (Why the point head reads the image tokens with their positions: `egokit.methods.pixel.head`.)"""
    import torch

    from egokit.data.shapesworld import ShapesWorld

    adapter = loaded.adapter
    xs, ys = [], []
    for scene in ShapesWorld(seed=world_seed, split="val").scenes(n):
        inputs = adapter.prepare([scene.image], adapter.prompt("describe the image .", 1))
        layout = adapter.visual_layout(inputs, 0)[0]
        with torch.no_grad(), feature_hooks(loaded) as hooks:
            loaded.model(**adapter.model_inputs(inputs))
        rows, cols = layout.grid
        k = rows * cols
        xs.append(hooks[LAYER_INPUTS][0, layout.positions[:k]].float().cpu().numpy())
        ys.append(np.stack(np.divmod(np.arange(k), cols), 1).astype(float))
    half = len(xs) // 2
    x_train, x_test = np.concatenate(xs[:half]), np.concatenate(xs[half:])
    y_train, y_test = np.concatenate(ys[:half]), np.concatenate(ys[half:])
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a = np.concatenate([(x_train - mu) / sd, np.ones((len(x_train), 1))], 1)
    b = np.concatenate([(x_test - mu) / sd, np.ones((len(x_test), 1))], 1)
    w = np.linalg.solve(a.T @ a + np.eye(a.shape[1]), a.T @ y_train)
    return {"position_probe_error_cells": float(np.abs(b @ w - y_test).mean()),
            "position_probe_baseline_cells": float(np.abs(y_test - y_train.mean(0)).mean())}


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate(model: Any = DEFAULT_MODEL, head: Any = DEFAULT_HEAD, seed: int = 0, n: int = 150,
             n_refer: int | None = None, world_seed: int = 0, device: str = "cpu", progress: bool = True,
             step: Callable[[int], None] | None = None, probe: bool = True) -> PixelEvaluation:
    """Every metric of the module docstring on `n` test scenes (and up to `n_refer` expressions, default 2n);
    with `probe`, also `position_probe`'s two numbers. model: a `LoadedModel` or a name to load; head: a
    `PointHead` or a zoo name / folder."""
    from tqdm.auto import tqdm

    from egokit.data.caption_scoring import caption_score
    from egokit.data.captions import position_word
    from egokit.data.shapesworld import ShapesWorld

    t0 = time.monotonic()
    loaded = loaded_model(model, device)
    head = as_head(head, loaded.device)
    head.check(loaded)
    loaded.model.eval()
    tok = tokenizer_of(loaded)
    world = ShapesWorld(seed=world_seed, split="test")
    rng = np.random.default_rng([seed, 31])
    start = int(rng.integers(1 << 20))
    scenes: list[Scene] = list(world.scenes(n, start))
    n_refer = 2 * n if n_refer is None else n_refer
    bar = tqdm(total=2 * n + n_refer, desc="egokit pixel eval", unit="item", disable=not progress, mininterval=2.0)
    tick = step or (lambda k: None)

    hits = base_hits = words_total = 0
    tf_hits = tf_total = 0
    with_c = without_c = attrs_total = 0
    for scene in scenes:
        size = scene.size
        r = localize(loaded, head, scene, check=False, keep_image=False)
        c, t, _ = caption_score(r.answer, scene)
        with_c, attrs_total = with_c + c, attrs_total + t
        points = r.word_points.tolist()
        for k, o in object_words(r.words, scene.objects):
            box = scene.objects[o].box
            hits += inside(points[k], box)
            base_hits += inside((size / 2, size / 2), box)
            words_total += 1
        _, model_inputs = prompt_inputs(loaded, scene.image, CAPTION_PROMPT)
        plain = tok.decode(generate_ids(loaded, None, model_inputs, 48), skip_special_tokens=True)
        without_c += caption_score(plain, scene)[0]
        bar.update(1)
        tick(1)
        cw, objs = caption_words(scene)
        tf = localize(loaded, head, scene, answer=" ".join(w.text for w in cw), check=False, keep_image=False)
        tf_points = tf.word_points.tolist()
        if len(tf_points) == len(cw):
            for k, w in enumerate(cw):
                if w.role in ATTRIBUTE_ROLES and w.ref is not None:
                    tf_hits += inside(tf_points[k], objs[w.ref].box)
                    tf_total += 1
        bar.update(1)
        tick(1)

    wh = mean_object_size(world_seed)
    refer_hits = refer_base = refer_total = 0
    ious, answer_ious, union_hits = [], [], 0
    by_objects: dict[int, list[bool]] = {}
    asked: list[tuple[bool, bool]] = []  # (the base model names the object's position, the box is a hit)
    cases = [(s, e, i) for s in world.scenes(n_refer, start + n) for e, i in referring_expressions(s)]
    order = np.random.default_rng([seed, 32]).permutation(len(cases))[:n_refer]
    for j in sorted(order.tolist()):
        scene, expression, i = cases[j]
        box = tuple(float(v) for v in scene.objects[i].box)
        r = refer(loaded, head, scene, expression, check=False, keep_image=False)
        v = iou(r.box, box)
        ious.append(v)
        refer_hits += v >= 0.5
        answer_ious.append(iou(tuple(r.extra["answer_position_box"]), box))
        union_hits += iou(tuple(box_from_points(r.token_points.reshape(-1, 2)).tolist()), box) >= 0.5
        refer_base += iou(center_box(scene.size, wh), box) >= 0.5
        refer_total += 1
        by_objects.setdefault(len(scene.objects), []).append(v >= 0.5)
        _, model_inputs = prompt_inputs(loaded, scene.image, refer_prompt(expression))
        said = tok.decode(generate_ids(loaded, None, model_inputs, 4), skip_special_tokens=True).strip()
        asked.append((said == position_word(scene.objects[i].center, scene.size), v >= 0.5))
        bar.update(1)
        tick(1)
    bar.close()
    with_acc = with_c / max(1, attrs_total)
    without_acc = without_c / max(1, attrs_total)
    out = {
        "word_in_box": hits / max(1, words_total),
        "word_in_box_center_baseline": base_hits / max(1, words_total),
        "word_in_box_teacher_forced": tf_hits / max(1, tf_total),
        "refer_p50": refer_hits / max(1, refer_total),
        "refer_p50_center_baseline": refer_base / max(1, refer_total),
        "refer_miou": float(np.mean(ious)) if ious else 0.0,
        "refer_p50_answer_position": float(np.mean([v >= 0.5 for v in answer_ious])) if answer_ious else 0.0,
        "refer_miou_answer_position": float(np.mean(answer_ious)) if answer_ious else 0.0,
        "refer_p50_token_union": union_hits / max(1, refer_total),
        "refer_p50_by_objects": {str(k): round(float(np.mean(v)), 4) for k, v in sorted(by_objects.items())},
        **_grounding(asked),
        "caption_attr_acc_with_head": with_acc,
        "caption_attr_acc_without_head": without_acc,
        **(position_probe(loaded, world_seed=world_seed) if probe else {}),
        "n_scenes": len(scenes),
        "n_object_words": words_total,
        "n_refer": refer_total,
        "seed": seed,
        "model": str(loaded.name),
        "head": _head_name(head),
        "seconds": round(time.monotonic() - t0, 1),
    }
    metrics = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in flat_metrics(out).items()}
    settings = {"seed": seed, "n": n, "n_refer": n_refer, "world_seed": world_seed, "probe": probe}
    return PixelEvaluation(metrics, settings)


def quick_evaluate(model: Any) -> PixelEvaluation:
    """`evaluate` at its smallest honest setting: the shipped head (`DEFAULT_HEAD`) on `QUICK_SCENES` test
    scenes and `QUICK_REFER` referring expressions, without the position probe (seconds on a CPU).
    model: a `LoadedModel` (the micro VLM the head was trained on)."""
    return evaluate(model, DEFAULT_HEAD, n=QUICK_SCENES, n_refer=QUICK_REFER, progress=False, probe=False)


def _grounding(asked: list[tuple[bool, bool]]) -> dict[str, float]:
    """How well the base model itself grounds the expressions, and refer_p50 split by it."""
    right = [hit for said, hit in asked if said]
    wrong = [hit for said, hit in asked if not said]
    return {"refer_base_position_acc": len(right) / max(1, len(asked)),
            "refer_p50_base_right": float(np.mean(right)) if right else 0.0,
            "refer_p50_base_wrong": float(np.mean(wrong)) if wrong else 0.0}


def _head_name(head: Any) -> str:
    mode = head.meta.get("mode", "?")
    layers = sorted(head.layer_states)
    layer = f"tuned decoder layers {','.join(map(str, layers))}" if layers else "frozen model"
    return f"point head ({mode} targets, {layer})"


__all__ = [
    "DEFAULT_MODEL",
    "PixelEvaluation",
    "center_box",
    "evaluate",
    "inside",
    "iou",
    "match_phrases",
    "mean_object_size",
    "noun_phrases",
    "object_words",
    "position_probe",
    "quick_evaluate",
]
