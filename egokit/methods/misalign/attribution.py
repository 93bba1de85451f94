"""The attribution passes of the misalignment method (pure tensor work on a loaded dual encoder).

Every pass scores s = cos(image embedding, text embedding) for a batch of (image, caption) rows and
returns per-token scores (B, T) for the caption side:

- `gradient_attention_pass`: CLIP4DM. The capture engine records, in the last L text layers, the softmax
  row of each caption's pooled (end-of-text) position with gradients; after ``s.sum().backward()`` (rows
  are independent, so each row gets ∂s_b/∂A), R_l = mean over heads of G_l ⊙ A_l and R = mean over
  layers. Three variants come out of the same pass: ``signed`` (the paper: no ReLU), ``clamped``
  (Chefer's ReLU on each head's G ⊙ A before the head mean) and ``positive_only`` (the signed map with
  its negative values set to zero after aggregation, i.e. only supporting evidence kept).
- `chefer_pass`: Chefer et al.'s cumulative rule over all text layers (full maps, ReLU per head).
- `captum_pass`: captum's `LayerIntegratedGradients` on the token-embedding layer, attributing s, with
  the caption's tokens replaced by padding as the baseline (template and special tokens kept).
- `word_heatmaps`: where each word "looks" in the image (see its docstring).

During the gradient passes the model's parameters are frozen (restored afterwards) and the graph starts
at the input of the first attributed layer, so no weight gradient is computed or left behind in
``param.grad`` and the backward pass stops where the attributed layers start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from egokit.capture.aggregate import chefer_rule, gradient_attention
from egokit.capture.engine import capture
from egokit.capture.hooks import Hooks
from egokit.methods.misalign.inputs import ModelBundle, TextBatch

GRAD_ATTENTION_VARIANTS = ("signed", "clamped", "positive_only")


# ------------------------------------------------------------------------------------------ plumbing


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Turn off `requires_grad` on every parameter for the block; restore it afterwards (also on errors)."""
    changed = [p for p in model.parameters() if p.requires_grad]
    for p in changed:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in changed:
            p.requires_grad_(True)


def token_embedding(bundle: ModelBundle) -> nn.Module:
    """The text encoder's token-embedding layer (the family's "text_embeddings" part)."""
    return bundle.adapter.module("text_embeddings")


def text_layers(bundle: ModelBundle) -> nn.ModuleList:
    """The text encoder's transformer blocks (the family's "text_blocks" part)."""
    return bundle.adapter.module("text_blocks")


@contextmanager
def graph_from_layer(bundle: ModelBundle, first: int) -> Iterator[None]:
    """Make the hidden states entering text layer `first` a fresh leaf that requires grad, so the forward
    builds a graph even with frozen parameters, and the backward stops where the attributed layers start
    (nothing below layer `first` is differentiated)."""
    with Hooks() as hooks:
        hooks.leaf_input(text_layers(bundle)[first])
        yield


def _pooled(out: Any) -> torch.Tensor:
    return out if torch.is_tensor(out) else out.pooler_output


def text_features(bundle: ModelBundle, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                  ) -> torch.Tensor:
    """(B, D) caption embeddings in the joint space."""
    kw = {"input_ids": input_ids}
    if attention_mask is not None:
        kw["attention_mask"] = attention_mask
    return _pooled(bundle.model.get_text_features(**kw))


def image_features(bundle: ModelBundle, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, D) image embeddings in the joint space."""
    return _pooled(bundle.model.get_image_features(pixel_values=pixel_values))


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.float(), b.float(), dim=-1)


# ------------------------------------------------------------------------------------------ passes


def gradient_attention_pass(bundle: ModelBundle, image_emb: torch.Tensor, text: TextBatch, layers: Sequence[int]
                            ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """CLIP4DM's pass: ({"signed", "clamped", "positive_only"} → (B, T) token scores, s (B,))."""
    modules = bundle.adapter.attention_modules("text")
    with torch.enable_grad(), frozen(bundle.model), graph_from_layer(bundle, min(layers)), capture(
        modules, layers=list(layers), queries=text.pool[:, None], grad=True, part="text"
    ) as cap:
        sim = cosine(text_features(bundle, text.input_ids, text.attention_mask), image_emb)
        sim.sum().backward()
    att, grad = cap.stack(), cap.stack_grads()  # (L, B, H, 1, T)
    signed = gradient_attention(att, grad, signed=True)[:, 0]
    clamped = gradient_attention(att, grad, signed=False)[:, 0]
    scores = {"signed": signed, "clamped": clamped, "positive_only": signed.clamp_min(0.0)}
    return {k: v.detach() for k, v in scores.items()}, sim.detach()


def chefer_pass(bundle: ModelBundle, image_emb: torch.Tensor, text: TextBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Chefer's cumulative rule over every text layer: R[pooled, :] per row → ((B, T), s (B,))."""
    modules = bundle.adapter.attention_modules("text")
    with torch.enable_grad(), frozen(bundle.model), graph_from_layer(bundle, 0), capture(
        modules, layers=None, queries=None, keys=None, grad=True, part="text"
    ) as cap:
        sim = cosine(text_features(bundle, text.input_ids, text.attention_mask), image_emb)
        sim.sum().backward()
    rel = chefer_rule(cap.stack(), cap.stack_grads())  # (B, T, T)
    rows = rel[torch.arange(rel.shape[0], device=rel.device), text.pool.to(rel.device)]
    return rows.detach(), sim.detach()


def captum_pass(bundle: ModelBundle, image_emb: torch.Tensor, text: TextBatch, n_steps: int = 16
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrated gradients of s on the token embeddings (summed over the embedding dimension)."""
    from captum.attr import LayerIntegratedGradients

    mask = text.attention_mask

    def forward(input_ids: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        m = None if mask is None else mask.repeat(input_ids.shape[0] // mask.shape[0], 1)
        return cosine(text_features(bundle, input_ids, m), img)

    is_caption = torch.zeros_like(text.input_ids, dtype=torch.bool)
    for b, tw in enumerate(text.token_word):
        is_caption[b, : len(tw)] = torch.tensor([w >= 0 for w in tw], dtype=torch.bool)
    pad = bundle.tokenizer.pad_token_id
    baseline = torch.where(is_caption, torch.full_like(text.input_ids, 0 if pad is None else int(pad)),
                           text.input_ids)
    lig = LayerIntegratedGradients(forward, token_embedding(bundle))
    with torch.enable_grad():
        attr = lig.attribute(text.input_ids, baselines=baseline, additional_forward_args=(image_emb,),
                             n_steps=n_steps, internal_batch_size=None)
        with torch.no_grad():
            sim = cosine(text_features(bundle, text.input_ids, mask), image_emb)
    return attr.sum(-1).detach(), sim


# ------------------------------------------------------------------------------------------ heatmaps


def word_heatmaps(bundle: ModelBundle, pixel_values: torch.Tensor, patch_positions: torch.Tensor,
                  template: str, words: Sequence[str], chunk: int = 64) -> torch.Tensor:
    """(n_words, N) signed map per word over the N patch tokens of one image.

    Word w's map is how much each patch's support for the match drops when w is removed from the caption:
    ``M(caption) − M(caption without w)``, where M(text) is gradient × input of s = cos(image, text) on
    the patch tokens entering the last vision layer, summed over channels (a Grad-CAM for ViTs). Pictures
    show the magnitude: where the patch's evidence depends on the word. It costs one batched vision
    forward/backward of (n_words + 1) copies of the image and one text forward; no second-order gradients.
    """
    texts = [template + " ".join(words)]
    texts += [template + " ".join(w for j, w in enumerate(words) if j != i) for i in range(len(words))]
    tok = bundle.tokenizer
    padding = getattr(bundle.adapter, "text_padding", True)
    call: dict[str, Any] = {"return_tensors": "pt", "padding": padding}
    if padding == "max_length":
        call["max_length"] = bundle.max_text_length
    maps = []
    for start in range(0, len(texts), chunk):
        part = texts[start : start + chunk]
        enc = tok(part, **call)
        with torch.no_grad():
            t = text_features(bundle, enc["input_ids"].to(bundle.device),
                              None if enc.get("attention_mask") is None else enc["attention_mask"].to(bundle.device))
        pv = pixel_values.expand(len(part), *pixel_values.shape[1:])
        last_block = bundle.adapter.module("vision_blocks")[-1]
        with torch.enable_grad(), frozen(bundle.model), Hooks() as hooks:
            hooks.leaf_input(last_block, "h")  # gradients stop at the input of the last vision block
            sim = cosine(image_features(bundle, pv), t)
            h = hooks["h"]
            (g,) = torch.autograd.grad(sim.sum(), h)
        maps.append((g * h).sum(-1).detach()[:, patch_positions.to(h.device)])
    m = torch.cat(maps)  # (n_words + 1, N)
    return (m[:1] - m[1:]).float().cpu()


__all__ = [
    "GRAD_ATTENTION_VARIANTS",
    "captum_pass",
    "chefer_pass",
    "cosine",
    "frozen",
    "gradient_attention_pass",
    "image_features",
    "text_features",
    "word_heatmaps",
]
