"""Evaluation of the misalignment method on ShapesWorld foils (`egokit misalign eval --json`).

Data: `ShapesWorld(seed, holdout="default")`. The **test** split gives n scenes; scene i gets a foil of
kind ``FOIL_KINDS[i % 5]`` (the next possible kind when that swap does not exist, e.g. a relation foil
of a one-object scene), so every kind is measured; multi-error captions have 1–3 swapped words. Unless
given, the number of layers L and then ε are calibrated on the **validation** split of the same seed
(`calibrate`): L by localisation accuracy on single foils, ε by word-level F1 on multi-error captions.

Metrics:

- ``la``: localisation accuracy, the fraction of foils whose most negative word is the swapped word
  (ties count 1/k for k tied words); ``la_by_type``; ``la_clamped``, ``la_positive_only``,
  ``la_chefer``, ``la_captum`` for the variants; ``la_paper_layers`` with the paper's last 3 layers;
  ``chance_la`` = mean of 1/(eligible words); ``la_with_punctuation``: the official rule, where the final
  "." may also be the most negative word (the kit never flags punctuation: a deliberate difference).
- ``ap_fclipscore`` / ``ap_clipscore``: pair level, original vs foil caption of the same image; average
  precision of telling the foil apart by −F-CLIPScore and by −CLIPScore. As in the paper's FOIL setting
  (single-error data), F-CLIPScore here uses the most negative word (`fclipscore_most_negative`);
  ``ap_fclipscore_eps`` uses the threshold rule (Σ of words below ε) instead. ``pair_accuracy``: how
  often the true caption is more similar to the image than its foil (how well the model itself sees
  the swap; localisation cannot do much better than the model's own sensitivity).
- ``multi_error.{precision,recall,f1}``: word level over multi-error captions, flagged = r < ε.
- ``paper_settings.*``: the same test pairs scored with the paper's settings — its template where the
  tokenizer can read it, the last 3 text layers, ε = −5e-5 — side by side with the calibrated ones above:
  ``la``, ``ap_fclipscore_eps`` and ``multi_error.{precision,recall,f1}``, with the settings used.
- ``captions_per_s_batched`` (one `score_batch` call over the evaluation's own workload, the 2n true and
  foil captions of the n test images) and ``captions_per_s_single`` (`score` in a loop over the same
  pairs), both without heatmaps, after a warm-up call; best of 3 alternating runs each.

`evaluate` returns a `MisalignEvaluation`: its `metrics()` is one flat dict (what `egokit misalign eval
--json` prints), grouped metrics under dotted names (``la_by_type.color``, ``multi_error.f1``,
``validation.val_la_by_layers.2``) and the attributed layers as one string of indices (``"0,1,2,3"``).
`quick_evaluate` is the same evaluation at its smallest honest size (a few seconds on the micro CLIP).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from egokit.data.captions import FOIL_KINDS
from egokit.errors import InputError
from egokit.methods.misalign.inputs import default_template, resolve_model
from egokit.methods.misalign.scoring import (
    PAPER_EPS,
    PAPER_LAYERS,
    MisalignmentResult,
    model_key,
    resolve_eps,
    resolve_layers,
    score,
    score_batch,
    score_variants,
)
from egokit.methods.misalign.words import eligible_mask
from egokit.results import MetricsEvaluation, flat_metrics

#: the micro zoo model the method runs on by default
DEFAULT_MODEL = "micro-clip"
EVAL_VARIANTS = ("signed", "clamped", "positive_only", "chefer")
#: settings of `quick_evaluate`: 10 scenes, no captum baseline, a short single-caption timing loop
QUICK = {"n": 10, "captum": False, "n_single": 4}


class MisalignEvaluation(MetricsEvaluation):
    """What `evaluate` returns: the flat metrics of the module docstring (`metrics()`, also `ev["la"]`), the
    settings it ran with, a table picture, and one `.safetensors` file (`save` / `load`)."""

    FILE_KIND: ClassVar[str] = "egokit.misalign_evaluation"
    FILE_VERSION: ClassVar[int] = 1
    FILE_WHAT: ClassVar[str | None] = "misalignment evaluation"

    def section(self, prefix: str) -> dict[str, Any]:
        """The metrics named `prefix.<name>`, as {name: value} (e.g. ``section("la_by_type")``)."""
        head = prefix + "."
        return {k[len(head):]: v for k, v in self._metrics.items() if k.startswith(head)}

    @property
    def layers(self) -> list[int]:
        """The text layers attributed (indices)."""
        text = str(self._metrics.get("layers", ""))
        return [int(x) for x in text.split(",") if x]


# ------------------------------------------------------------------------------------------ data


def _world(seed: int, split: str) -> Any:
    from egokit.data.shapesworld import ShapesWorld

    return ShapesWorld(seed=int(seed), split=split, holdout="default")


def foil_set(seed: int, n: int, split: str = "test") -> list[tuple[Any, Any]]:
    """n (scene, foil) pairs; kinds cycle through FOIL_KINDS (next possible kind when one is impossible)."""
    world = _world(seed, split)
    out = []
    i = 0
    while len(out) < n:
        scene = world.scene(i)
        for k in range(len(FOIL_KINDS)):
            kind = FOIL_KINDS[(len(out) + k) % len(FOIL_KINDS)]
            try:
                out.append((scene, world.foil(scene, kind)))
                break
            except InputError:
                continue
        i += 1
    return out


def multi_foil_set(seed: int, n: int, split: str = "test") -> list[tuple[Any, Any]]:
    """n (scene, multi-foil) pairs with 1–3 swapped words (fewer when the scene allows fewer)."""
    world = _world(seed, split)
    out = []
    for i in range(n):
        scene = world.scene(10_000 + i)
        for errors in range(1 + i % 3, 0, -1):
            try:
                out.append((scene, world.multi_foil(scene, errors)))
                break
            except InputError:
                continue
    return out


# ------------------------------------------------------------------------------------------ metrics


def localisation(results: Sequence[MisalignmentResult], targets: Sequence[int], punctuation: bool = False
                 ) -> list[float]:
    """Per caption: 1 if the lowest eligible word is the target, 1/k if k words tie for lowest, else 0.

    punctuation: also let punctuation-only words (the final ".") be the lowest, as the official rule does.
    """
    credit = []
    for r, t in zip(results, targets):
        scores = r.scores.double()
        ok = ~torch.isnan(scores) if punctuation else eligible_mask(r.words, r.scores)
        if not bool(ok.any()):
            credit.append(0.0)
            continue
        low = float(scores[ok].min())
        tied = [i for i in range(len(r.words)) if bool(ok[i]) and float(scores[i]) == low]
        credit.append(1.0 / len(tied) if t in tied else 0.0)
    return credit


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Average precision of ranking positives (label 1) first by descending score; tied scores form one
    threshold (as scikit-learn computes it)."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last_of_group = np.r_[np.diff(s) != 0, True]
    tp = np.cumsum(y)[last_of_group]
    k = (np.arange(len(y)) + 1)[last_of_group]
    precision = tp / k
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def word_prf(results: Sequence[MisalignmentResult], truths: Sequence[Sequence[int]], eps: float) -> dict[str, float]:
    """Micro-averaged word-level precision, recall and F1 of flagging r < eps against the true indices."""
    tp = fp = fn = 0
    for r, truth in zip(results, truths):
        flagged = set(r.with_eps(eps).flagged)
        t = set(int(i) for i in truth)
        tp += len(flagged & t)
        fp += len(flagged - t)
        fn += len(t - flagged)
    p = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * rec / (p + rec) if p + rec else 0.0
    return {"precision": p, "recall": rec, "f1": f1}


def calibrate_eps(model: Any, seed: int = 0, n: int = 200, *, layers: int | Sequence[int] | None = None,
                  template: str | None = None, batch_size: int = 64) -> tuple[float, dict[str, float]]:
    """ε maximising word-level F1 on multi-error captions of the validation split → (ε, its P/R/F1)."""
    bundle = resolve_model(model)
    data = multi_foil_set(seed, n, split="val")
    results = score_batch(bundle, [s.image for s, _ in data], [f.caption for _, f in data], layers=layers,
                          template=template, batch_size=batch_size, keep_image=False)
    truths = [f.indices for _, f in data]
    values = np.concatenate([r.scores[eligible_mask(r.words, r.scores)].numpy() for r in results])
    negative = values[values < 0]
    candidates = sorted({0.0} | {float(q) for q in np.quantile(negative, np.linspace(0, 1, 101))}
                        if negative.size else {0.0})
    best_eps, best = 0.0, {"precision": 0.0, "recall": 0.0, "f1": -1.0}
    for c in candidates:
        eps = float(np.nextafter(c, np.inf))  # flag every word scoring c or lower
        m = word_prf(results, truths, eps)
        if m["f1"] > best["f1"]:
            best_eps, best = eps, m
    return best_eps, best


def calibrate_layers(model: Any, seed: int = 0, n: int = 200, *, template: str | None = None,
                     batch_size: int = 64) -> tuple[int, dict[int, float]]:
    """The number L of last text layers maximising localisation accuracy on single foils of the
    validation split → (L, {L: accuracy}); ties go to the L closest to the paper's 3."""
    bundle = resolve_model(model)
    data = foil_set(seed, n, split="val")
    images, captions = [s.image for s, _ in data], [f.caption for _, f in data]
    targets = [f.index for _, f in data]
    n_layers = len(bundle.adapter.attention_modules("text"))
    accuracy = {}
    for count in range(1, n_layers + 1):
        res = score_batch(bundle, images, captions, layers=count, template=template, batch_size=batch_size,
                          keep_image=False)
        accuracy[count] = float(np.mean(localisation(res, targets)))
    best = max(accuracy, key=lambda c: (round(accuracy[c], 6), -abs(c - PAPER_LAYERS)))
    return best, accuracy


def calibrate(model: Any, seed: int = 0, n: int = 200, *, layers: int | Sequence[int] | None = None,
              template: str | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Calibrate L (unless `layers` is given) and then ε on the validation split (see the module docstring).
    Returns {"layers", "eps", "val_la_by_layers", "val_multi_error"}; write the first two to the
    checkpoint's `egokit.json` under "misalign" to make them its defaults."""
    bundle = resolve_model(model)
    out: dict[str, Any] = {}
    if layers is None:
        layers, out["val_la_by_layers"] = calibrate_layers(bundle, seed, n, template=template, batch_size=batch_size)
    out["layers"] = layers
    out["eps"], out["val_multi_error"] = calibrate_eps(bundle, seed, n, layers=layers, template=template,
                                                       batch_size=batch_size)
    return out


# ------------------------------------------------------------------------------------------ evaluation


def evaluate(model: Any = DEFAULT_MODEL, *, seed: int = 0, n: int = 200, eps: float | None = None,
             layers: int | Sequence[int] | None = None, template: str | None = None, batch_size: int = 64,
             n_single: int = 16, captum: bool = True, calibrate_on_val: bool = True) -> MisalignEvaluation:
    """Run the evaluation described in the module docstring; return it as a `MisalignEvaluation`.

    layers/eps: None → calibrated on the validation split (`calibrate_on_val=True`), or the checkpoint's
    defaults (its settings, `loaded.settings_for("misalign")`, else the paper's L = 3, ε = −5e-5).
    """
    from tqdm.auto import tqdm

    if int(n) < 1:
        raise InputError(f"n must be at least 1, got {n}")
    settings = {"seed": int(seed), "n": int(n), "eps": None if eps is None else float(eps),
                "layers": _layers_setting(layers), "template": template, "batch_size": int(batch_size),
                "n_single": int(n_single), "captum": bool(captum), "calibrate_on_val": bool(calibrate_on_val)}
    bundle = resolve_model(model)
    template = default_template(bundle.tokenizer) if template is None else template
    steps = tqdm(total=6, desc="misalign eval", unit="step")
    val: dict[str, Any] = {}
    source = "given"
    if calibrate_on_val and (layers is None or eps is None):
        val = calibrate(bundle, seed, n, layers=layers, template=template, batch_size=batch_size)
        source = f"calibrated on the validation split (seed {seed}, {n} captions)"
        layers = val["layers"] if layers is None else layers
        eps = val["eps"] if eps is None else eps
    elif layers is None or eps is None:
        source = "model defaults"
    layer_ids = resolve_layers(bundle, layers)
    eps_value = resolve_eps(bundle, eps)
    steps.update()

    data = foil_set(seed, n)
    images = [s.image for s, _ in data]
    foils = [f.caption for _, f in data]
    originals = [s.caption for s, _ in data]
    common = {"layers": layer_ids, "eps": eps_value, "template": template, "batch_size": batch_size,
              "keep_image": False}
    res = score_variants(bundle, images + images, foils + originals, variants=EVAL_VARIANTS, **common)
    steps.update()
    targets = [f.index for _, f in data]
    out: dict[str, Any] = {"model": model_key(bundle) or (model if isinstance(model, str) else
                                                           type(bundle.model).__name__),
                           "seed": int(seed), "n": len(data), "template": template, "layers": layer_ids,
                           "eps": eps_value, "calibration": source}
    la = {v: localisation(res[v][: len(data)], targets) for v in EVAL_VARIANTS}
    out["la"] = float(np.mean(la["signed"]))
    out["la_with_punctuation"] = float(np.mean(localisation(res["signed"][: len(data)], targets, punctuation=True)))
    kinds = [f.kind for _, f in data]
    out["la_by_type"] = {k: float(np.mean([c for c, kk in zip(la["signed"], kinds) if kk == k]))
                         if k in kinds else None for k in FOIL_KINDS}
    out["la_clamped"] = float(np.mean(la["clamped"]))
    out["la_positive_only"] = float(np.mean(la["positive_only"]))
    out["la_chefer"] = float(np.mean(la["chefer"]))
    paper = resolve_layers(bundle, PAPER_LAYERS)
    if paper != layer_ids:
        last3 = score_batch(bundle, images, foils, **{**common, "layers": paper})
        out["la_paper_layers"] = float(np.mean(localisation(last3, targets)))
    else:
        out["la_paper_layers"] = out["la"]
    if captum:
        cap = score_batch(bundle, images, foils, variant="captum", **common)
        out["la_captum"] = float(np.mean(localisation(cap, targets)))
    else:
        out["la_captum"] = None
    steps.update()
    out["chance_la"] = float(np.mean([1.0 / max(1, sum(r.eligible)) for r in res["signed"][: len(data)]]))

    signed = res["signed"]
    labels = [1] * len(data) + [0] * len(data)
    out["ap_fclipscore"] = average_precision(labels, [-r.fclipscore_most_negative for r in signed])
    out["ap_fclipscore_eps"] = average_precision(labels, [-r.fclipscore for r in signed])
    out["ap_clipscore"] = average_precision(labels, [-r.clipscore for r in signed])
    pair = [o.similarity > f.similarity for f, o in zip(signed[: len(data)], signed[len(data):])]
    out["pair_accuracy"] = float(np.mean(pair))
    out["pair_accuracy_by_type"] = {k: float(np.mean([c for c, kk in zip(pair, kinds) if kk == k]))
                                    if k in kinds else None for k in FOIL_KINDS}

    multi = multi_foil_set(seed, n)
    multi_res = score_batch(bundle, [s.image for s, _ in multi], [f.caption for _, f in multi], **common)
    out["multi_error"] = word_prf(multi_res, [f.indices for _, f in multi], eps_value)
    out["paper_settings"] = _paper_settings(bundle, images, foils, originals, targets, multi, batch_size)
    if val:
        out["validation"] = {k: v for k, v in val.items() if k not in ("layers", "eps")}
    steps.update()

    out.update(_speed(bundle, images + images, foils + originals, layer_ids, template, batch_size, n_single))
    steps.update()
    out["speedup"] = out["captions_per_s_batched"] / out["captions_per_s_single"]
    steps.update()
    steps.close()
    return MisalignEvaluation(flat_metrics(out), settings)


def _paper_settings(bundle: Any, images: list[Any], foils: list[str], originals: list[str], targets: list[int],
                    multi: list[tuple[Any, Any]], batch_size: int) -> dict[str, Any]:
    """The evaluation's own pairs scored with the paper's settings (template, last 3 layers, ε = −5e-5)."""
    kw = {"layers": resolve_layers(bundle, PAPER_LAYERS), "eps": PAPER_EPS,
          "template": default_template(bundle.tokenizer), "batch_size": batch_size, "keep_image": False}
    pairs = score_batch(bundle, images + images, foils + originals, **kw)
    n = len(foils)
    multi_res = score_batch(bundle, [s.image for s, _ in multi], [f.caption for _, f in multi], **kw)
    return {"template": kw["template"], "layers": kw["layers"], "eps": PAPER_EPS,
            "la": float(np.mean(localisation(pairs[:n], targets))),
            "ap_fclipscore_eps": average_precision([1] * n + [0] * n, [-r.fclipscore for r in pairs]),
            "multi_error": word_prf(multi_res, [f.indices for _, f in multi], PAPER_EPS)}


def quick_evaluate(model: Any = DEFAULT_MODEL, *, seed: int = 0) -> MisalignEvaluation:
    """`evaluate` at its smallest honest size (`QUICK`: 10 scenes, L and ε still calibrated on the validation
    split, no captum baseline): a few seconds on the micro CLIP on a CPU."""
    return evaluate(model, seed=seed, **QUICK)


def _layers_setting(layers: int | Sequence[int] | None) -> int | list[int] | None:
    if layers is None or isinstance(layers, (int, np.integer)):
        return None if layers is None else int(layers)
    return [int(x) for x in layers]


def _speed(bundle: Any, images: list[Any], captions: list[str], layers: Any, template: str, batch_size: int,
           n_single: int, repeats: int = 3) -> dict[str, float]:
    """Captions per second of one `score_batch` call over all pairs and of `score` in a loop, both without
    heatmaps. Batched and single runs alternate `repeats` times and the best rate of each is kept (as
    `timeit` does), so a busy shared CPU distorts the comparison less."""
    kw = {"layers": layers, "template": template, "heatmaps": False}
    score(bundle, images[0], captions[0], **kw)  # warm-up
    k = max(1, min(int(n_single), len(captions)))
    batched = single = 0.0
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        score_batch(bundle, images, captions, batch_size=batch_size, **kw)
        batched = max(batched, len(captions) / (time.perf_counter() - start))
        start = time.perf_counter()
        for im, c in zip(images[:k], captions[:k]):
            score(bundle, im, c, **kw)
        single = max(single, k / (time.perf_counter() - start))
    return {"captions_per_s_batched": batched, "captions_per_s_single": single}


__all__ = [
    "DEFAULT_MODEL",
    "EVAL_VARIANTS",
    "QUICK",
    "MisalignEvaluation",
    "average_precision",
    "calibrate",
    "calibrate_eps",
    "calibrate_layers",
    "evaluate",
    "foil_set",
    "localisation",
    "multi_foil_set",
    "quick_evaluate",
    "word_prf",
]
