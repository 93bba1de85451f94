"""Misalignment (CLIP4DM): which words of a caption do not match the image.

    import egokit
    r = egokit.misalign.score(egokit.load("micro-clip"), image, "a small red striped circle .")
    r.words, r.scores          # per-word attribution r_i; negative = the word lowers the match
    r.flagged_words, r.phrases # words with r < eps, adjacent ones merged
    r.most_negative            # the single most suspicious word
    r.clipscore, r.fclipscore  # 2.5·max(s, 0) and (1 − max(s, 0))·Σ flagged r
    r.heatmap_image("red")     # where the word looks in the image

Method (Nam et al., AAAI 2025): text = template + caption; s = cos(image, text); in each of the last L
text layers G_l = ∂s/∂A_l at the end-of-text row, R_l = mean over heads of G_l ⊙ A_l, **signed** (no
ReLU); R = mean over layers; r_i = R[eot, i]; sub-word tokens averaged into words; template words dropped.
F-CLIPScore = (1 − max(s, 0)) · Σ_{r_i < ε} r_i (`fclipscore`, multi-error data) or (1 − max(s, 0)) · min_i r_i
(`fclipscore_most_negative`, single-error data), as the official implementation computes them.

Inputs and choices:

- **Template.** ``template=None`` uses the paper's "A photo depicts " when the tokenizer knows all its
  words, and no template otherwise (closed-vocabulary micro models never saw "depicts"; see
  `default_template`). Pass a string to choose.
- **Layers and ε.** ``layers=None`` and ``eps=None`` use the values calibrated for the checkpoint when it
  ships them (``"layers"`` and ``"eps"`` of its `egokit.json`, read by `egokit.load`:
  ``loaded.settings_for("misalign")``), else the paper's L = 3 and ε = −5e-5 (also for a bare
  ``(model, processor)`` pair, which carries no settings). Calibration runs
  on ShapesWorld's *validation* split (`egokit.methods.misalign.evaluation.calibrate`): L maximises
  localisation accuracy of single foils, then ε maximises word-level F1 of multi-error captions. Small
  models need it: the micro CLIP's text encoder has 4 layers, and in a causal encoder a word's
  information spreads into every later position after the first layer, so the last 3 layers smear a
  wrong colour onto the pattern and shape words after it; its first layer still sees the words apart.
- **Long captions.** A caption longer than the text encoder's limit is an `InputError` that names the words
  that do not fit; with ``truncate=True`` it is cut at the last word that fits and a `UserWarning` names
  the dropped words. An empty caption is an `InputError`; an unreadable image an `ImageError`.
- **Variants** (same call, `variant=`): "signed" (the paper), "clamped" (Chefer's ReLU on each head's
  G ⊙ A), "positive_only" (the signed map with negative values zeroed), "chefer" (Chefer's cumulative
  rule over all layers), "captum" (integrated gradients on the token embeddings).
- **Heatmaps** (``heatmaps=True``): per word, how each patch's gradient × input support for s changes
  when the word is removed from the caption (see `egokit.methods.misalign.attribution.word_heatmaps`).

`score_batch` scores many (image, caption) pairs in batched passes: each unique image is encoded once,
and the gradient × attention rows of all captions come from one forward/backward per batch (per-row
end-of-text positions through the capture engine's (B, R) queries).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egokit.errors import InputError
from egokit.methods.misalign.attribution import (
    GRAD_ATTENTION_VARIANTS,
    captum_pass,
    chefer_pass,
    gradient_attention_pass,
    image_features,
    word_heatmaps,
)
from egokit.methods.misalign.inputs import (
    PAPER_TEMPLATE,
    ModelBundle,
    TextBatch,
    check_caption,
    default_template,
    prepare_images,
    resolve_model,
    tokenize,
)
from egokit.methods.misalign.result import MisalignmentResult
from egokit.methods.misalign.words import merge_to_words

VARIANTS: tuple[str, ...] = ("signed", "clamped", "positive_only", "chefer", "captum")
PAPER_EPS = -5e-5
PAPER_LAYERS = 3
# A checkpoint's calibration ({"layers": L, "eps": ε}, found on the validation split: see the module
# docstring) lives in its egokit.json under "misalign". The micro CLIP's: L = 4 (all its text layers) won on
# the validation split of every checkpoint tried (0.41–0.45 localisation accuracy vs 0.15–0.20 for the last
# 3); ε from the same calibration of the 628-step pilot.


def score(model: Any, image: Any, caption: str, *, layers: int | Sequence[int] | None = None,
          eps: float | None = None, variant: str = "signed", template: str | None = None,
          heatmaps: bool = True, truncate: bool = False, processor: Any = None) -> MisalignmentResult:
    """Score one caption against one image: per-word attribution, flagged words, CLIPScore, F-CLIPScore.

    model:    a `LoadedModel` (`egokit.load(...)`), a model name, a `(model, processor)` pair, or a
              `CLIPModel`/`SiglipModel` with `processor=`.
    image:    anything `egokit.load_image` accepts (path, bytes, PIL image, array).
    layers:   the last `layers` text layers (an int; all of them if the encoder has fewer), or explicit
              layer indices (None: the checkpoint's calibrated L, else the paper's 3).
    eps:      flag words with r < eps (None: the checkpoint's calibrated ε, else the paper's −5e-5).
    variant:  one of `VARIANTS`.
    template: text put in front of the caption (None: see `default_template`).
    heatmaps: compute a heatmap per word (one extra batched vision pass).
    truncate: cut an over-long caption (with a warning) instead of raising `InputError`.
    """
    return score_batch(model, [image], [caption], layers=layers, eps=eps, variant=variant, template=template,
                       heatmaps=heatmaps, truncate=truncate, processor=processor)[0]


def score_batch(model: Any, images: Any, captions: Sequence[str], *, layers: int | Sequence[int] | None = None,
                eps: float | None = None, variant: str = "signed", template: str | None = None,
                heatmaps: bool = False, truncate: bool = False, batch_size: int = 64, processor: Any = None,
                keep_image: bool = True) -> list[MisalignmentResult]:
    """Score many (image, caption) pairs in batched passes; one result per caption, in order.

    images: one image per caption, or a single image for all captions. Pairs that share an image object
    (or path) encode it once. Other arguments as in `score`.
    """
    return score_variants(model, images, captions, variants=(variant,), layers=layers, eps=eps,
                          template=template, heatmaps=heatmaps, truncate=truncate, batch_size=batch_size,
                          processor=processor, keep_image=keep_image)[variant]


def score_variants(model: Any, images: Any, captions: Sequence[str], *, variants: Sequence[str] = ("signed",),
                   layers: int | Sequence[int] | None = None, eps: float | None = None,
                   template: str | None = None, heatmaps: bool = False, truncate: bool = False,
                   batch_size: int = 64, processor: Any = None, keep_image: bool = True
                   ) -> dict[str, list[MisalignmentResult]]:
    """Like `score_batch` for several variants at once ({variant: results}); "signed", "clamped" and
    "positive_only" share one pass."""
    bundle = resolve_model(model, processor)
    variants = tuple(dict.fromkeys(variants))
    for v in variants:
        if v not in VARIANTS:
            raise InputError(f"unknown variant {v!r}; choose one of {', '.join(VARIANTS)}")
    if isinstance(captions, str):
        captions = [captions]
    captions = list(captions)
    if not captions:
        raise InputError("no captions given")
    captions = [check_caption(c, i if len(captions) > 1 else None) for i, c in enumerate(captions)]
    image_list = _broadcast_images(images, len(captions))
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    layer_ids = resolve_layers(bundle, layers)
    template = default_template(bundle.tokenizer) if template is None else str(template)
    eps_value = resolve_eps(bundle, eps)

    # Unique images: decode, encode once.
    keys, index = _unique(image_list)
    unique_sources = [image_list[i] for i in keys]
    encoded = [_encode_images(bundle, unique_sources[i : i + batch_size], heatmaps)
               for i in range(0, len(keys), batch_size)]
    pixel = torch.cat([e[0] for e in encoded])
    emb = torch.cat([e[1] for e in encoded])
    arrays = [np.asarray(p, dtype=np.uint8) for e in encoded for p in e[2]]
    layouts = [lay for e in encoded for lay in e[3]]

    # Captions of similar length share a batch (less padding); results come back in the caller's order.
    order = sorted(range(len(captions)), key=lambda i: len(captions[i]))
    slots: dict[str, list[Any]] = {v: [None] * len(captions) for v in variants}
    for start in range(0, len(captions), batch_size):
        rows = order[start : start + batch_size]
        text = tokenize(bundle, [captions[r] for r in rows], template, truncate)
        img_idx = torch.tensor([index[r] for r in rows], dtype=torch.long)
        token_scores, sim = _token_scores(bundle, emb[img_idx.to(emb.device)], text, layer_ids, variants)
        for k, r in enumerate(rows):
            u = index[r]
            heat = None
            if heatmaps:
                heat = word_heatmaps(bundle, pixel[u : u + 1], layouts[u][0], template, text.words[k])
            for v in variants:
                slots[v][r] = _result(bundle, text, k, token_scores[v][k], float(sim[v][k]), eps_value, v,
                                      layer_ids, heat, layouts[u], arrays[u] if keep_image else None)
    return {v: list(results) for v, results in slots.items()}


# ------------------------------------------------------------------------------------------ helpers


def resolve_layers(bundle: ModelBundle, layers: int | Sequence[int] | None) -> list[int]:
    """The text layer indices to attribute: the last min(`layers`, n) layers (int) or the given indices;
    None: the checkpoint's calibrated layers (its settings), else the paper's last 3."""
    n = len(bundle.adapter.attention_modules("text"))
    if layers is None:
        layers = bundle.settings.get("layers", PAPER_LAYERS)
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        if int(layers) < 1:
            raise InputError(f"layers={layers}: attribute at least one text layer")
        return list(range(max(0, n - int(layers)), n))
    chosen = sorted({int(x) % n for x in layers if -n <= int(x) < n})
    if not chosen or len(chosen) != len(set(int(x) for x in layers)):
        raise InputError(f"layers {list(layers)} are not valid indices of the {n} text layers")
    return chosen


def model_key(bundle: ModelBundle) -> str:
    """The model's short name (a zoo name or the last part of a path)."""
    return Path(str(bundle.name).rstrip("/")).name if bundle.name else ""


def resolve_eps(bundle: ModelBundle, eps: float | None) -> float:
    """The flagging threshold: `eps` when given (finite), else the checkpoint's calibrated ε, else the paper's."""
    if eps is not None:
        value = float(eps)
        if not np.isfinite(value):
            raise InputError(f"eps must be a finite number, got {eps!r}")
        return value
    return float(bundle.settings.get("eps", PAPER_EPS))


def _broadcast_images(images: Any, n: int) -> list[Any]:
    if isinstance(images, (list, tuple)):
        images = list(images)
        if len(images) == 1:
            return images * n
        if len(images) != n:
            raise InputError(f"got {len(images)} images for {n} captions: give one image per caption, or one "
                             "image for all")
        return images
    return [images] * n


def _unique(images: list[Any]) -> tuple[list[int], list[int]]:
    """(first position of each unique image, unique index of every image); same object or same path = same."""
    seen: dict[Any, int] = {}
    firsts, index = [], []
    for i, im in enumerate(images):
        key = ("path", str(im)) if isinstance(im, (str, Path)) else ("id", id(im))
        if key not in seen:
            seen[key] = len(firsts)
            firsts.append(i)
        index.append(seen[key])
    return firsts, index


def _encode_images(bundle: ModelBundle, sources: list[Any], layout: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, list[Any], list]:
    """(pixel values, embeddings, decoded images, per image (patch positions, boxes, grid) or None)."""
    inputs, pils = prepare_images(bundle, sources)
    with torch.no_grad():
        emb = image_features(bundle, inputs["pixel_values"])
    layouts: list[Any] = [None] * len(pils)
    if layout:
        for b in range(len(pils)):
            lay = bundle.adapter.visual_layout(inputs, b)[0]
            layouts[b] = (lay.positions, lay.boxes, lay.grid)
    return inputs["pixel_values"], emb, pils, layouts


def _token_scores(bundle: ModelBundle, emb: torch.Tensor, text: TextBatch, layers: list[int],
                  variants: Sequence[str]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    scores: dict[str, torch.Tensor] = {}
    sims: dict[str, torch.Tensor] = {}
    if any(v in GRAD_ATTENTION_VARIANTS for v in variants):
        grad_scores, sim = gradient_attention_pass(bundle, emb, text, layers)
        for v in GRAD_ATTENTION_VARIANTS:
            scores[v], sims[v] = grad_scores[v], sim
    if "chefer" in variants:
        scores["chefer"], sims["chefer"] = chefer_pass(bundle, emb, text)
    if "captum" in variants:
        scores["captum"], sims["captum"] = captum_pass(bundle, emb, text)
    return ({k: v.float().cpu() for k, v in scores.items()}, {k: v.float().cpu() for k, v in sims.items()})


def _result(bundle: ModelBundle, text: TextBatch, row: int, token_scores: torch.Tensor, sim: float, eps: float,
            variant: str, layers: list[int], heat: torch.Tensor | None, layout: tuple | None,
            image: np.ndarray | None
            ) -> MisalignmentResult:
    n_tokens = len(text.token_word[row])
    if text.attention_mask is not None:
        n_tokens = int(text.attention_mask[row].sum())
    words = text.words[row]
    tw = text.token_word[row][:n_tokens]
    tokens = text.tokens(bundle.tokenizer, row)[:n_tokens]
    boxes, grid = (None, None) if layout is None else layout[1:]
    return MisalignmentResult(
        caption=text.captions[row],
        words=words,
        scores=merge_to_words(token_scores[:n_tokens], tw, len(words)),
        similarity=sim,
        eps=eps,
        variant=variant,
        template=text.template,
        layers=list(layers),
        tokens=tokens,
        token_scores=token_scores[:n_tokens].clone(),
        token_word=list(tw),
        heatmaps=heat,
        boxes=None if heat is None else torch.as_tensor(boxes, dtype=torch.float32),
        grid=None if heat is None else (int(grid[0]), int(grid[1])),
        image=image,
        dropped_words=list(text.dropped[row]),
        model_name=model_key(bundle),
    )


__all__ = [
    "PAPER_EPS",
    "PAPER_LAYERS",
    "PAPER_TEMPLATE",
    "VARIANTS",
    "MisalignmentResult",
    "resolve_layers",
    "score",
    "score_batch",
    "score_variants",
]
