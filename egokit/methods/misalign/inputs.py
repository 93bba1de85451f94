"""Inputs of the misalignment method: the model bundle, the caption template, tokenized captions with their
token → word maps, the pooled (end-of-text) position of each caption, and the images.

Caption rules (documented in `egokit.methods.misalign.scoring.score`):

- An empty or whitespace-only caption is an `InputError`.
- A caption longer than the text encoder's limit is an `InputError` naming the words that do not fit,
  unless `truncate=True`: then the caption is cut at the last word that fits and a `UserWarning` names
  the dropped words (they are also kept in the result's `dropped_words`).
- Words the tokenizer can only read as its unknown token (a closed-vocabulary model and "日本", an emoji)
  are named in a `UserWarning`; a caption made of nothing but such words is an `InputError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from egokit.errors import InputError
from egokit.methods.misalign.words import token_words, word_spans
from egokit.models.adapters.base import DUAL_ENCODER
from egokit.models.text import check_known_words

#: The paper's prompt: "A photo depicts " + caption.
PAPER_TEMPLATE = "A photo depicts "
#: The section of a checkpoint's settings (`egokit.json`) that holds this method's calibrated values.
METHOD = "misalign"


@dataclass
class ModelBundle:
    """What the method needs of a loaded model: the transformers model, its processor, the kit's adapter
    and the checkpoint's own settings for this method ({} for a model given without them)."""

    model: Any
    processor: Any
    adapter: Any
    name: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def family(self) -> str:
        return str(getattr(self.adapter, "family", ""))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_text_length(self) -> int:
        config = self.model.config.text_config
        return int(config.max_position_embeddings)


def resolve_model(model: Any, processor: Any = None) -> ModelBundle:
    """Accept a `LoadedModel`, a model name/path for `egokit.load`, a `(model, processor)` pair, or a model
    plus `processor=`; return a `ModelBundle` of a dual image-text encoder (`CapabilityError` otherwise).

    Only a `LoadedModel` (or a name, loaded here) brings its checkpoint's settings (`settings_for("misalign")`);
    a bare model has none, so it gets the paper's defaults."""
    if isinstance(model, ModelBundle):
        return model
    if isinstance(model, str):
        from egokit import load

        model = load(model)
    if isinstance(model, tuple) and len(model) == 2 and processor is None:
        model, processor = model
    if hasattr(model, "adapter") and hasattr(model, "model"):
        settings_for = getattr(model, "settings_for", None)
        bundle = ModelBundle(model.model, model.processor, model.adapter,
                             str(getattr(model, "name", "") or getattr(model, "source", "") or ""),
                             dict(settings_for(METHOD)) if callable(settings_for) else {})
    else:
        if processor is None:
            raise InputError("pass a LoadedModel (egokit.load(...)), a (model, processor) pair, or the model "
                             "together with processor=...")
        from egokit.models.adapters import adapter_for

        model_type = getattr(getattr(model, "config", None), "model_type", None)
        cls = adapter_for(model_type) if model_type else None
        if cls is None:
            raise InputError(f"no adapter knows model_type {model_type!r}; misalignment needs a CLIP or SigLIP model")
        bundle = ModelBundle(model, processor, cls(model, processor),
                             str(getattr(model, "name_or_path", "") or ""))
    bundle.adapter.require(DUAL_ENCODER, "misalignment scoring")
    return bundle


def default_template(tokenizer: Any) -> str:
    """The paper's "A photo depicts " when the tokenizer knows all of its words, else no template.

    A closed-vocabulary tokenizer (the micro zoo's) maps unknown words to `<unk>`; feeding the encoder
    tokens it never saw in training only adds noise, so such models get the bare caption.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return PAPER_TEMPLATE
    ids = tokenizer(PAPER_TEMPLATE.strip(), add_special_tokens=False)["input_ids"]
    return "" if unk in ids else PAPER_TEMPLATE


@dataclass
class TextBatch:
    """Tokenized prompts (template + caption) and how their tokens map to caption words."""

    captions: list[str]
    template: str
    words: list[list[str]]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    token_word: list[list[int]]
    pool: torch.Tensor
    dropped: list[list[str]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [self.template + c for c in self.captions]

    def model_kwargs(self) -> dict[str, torch.Tensor]:
        kw = {"input_ids": self.input_ids}
        if self.attention_mask is not None:
            kw["attention_mask"] = self.attention_mask
        return kw

    def tokens(self, tokenizer: Any, row: int) -> list[str]:
        return list(tokenizer.convert_ids_to_tokens(self.input_ids[row].tolist()))


def check_caption(caption: Any, index: int | None = None) -> str:
    """The caption stripped of outer whitespace; `InputError` if it is not a non-empty string."""
    where = "" if index is None else f" {index}"
    if not isinstance(caption, str):
        raise InputError(f"caption{where} must be a string, got {type(caption).__name__}")
    text = " ".join(caption.split())
    if not text:
        raise InputError(f"caption{where} is empty: give the words to check against the image")
    return text


def _n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, verbose=False)["input_ids"])


def fit_caption(bundle: ModelBundle, caption: str, template: str, truncate: bool) -> tuple[str, list[str]]:
    """The caption (cut to the encoder's limit when `truncate`) and the dropped words."""
    tok, limit = bundle.tokenizer, bundle.max_text_length
    if _n_tokens(tok, template + caption) <= limit:
        return caption, []
    words = caption.split()
    keep = 0
    lo, hi = 0, len(words)
    while lo < hi:  # largest prefix of words that fits
        mid = (lo + hi + 1) // 2
        if _n_tokens(tok, template + " ".join(words[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    keep = lo
    dropped = words[keep:]
    shown = " ".join(dropped)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    if not truncate:
        raise InputError(
            f"the caption is {_n_tokens(tok, template + caption)} tokens long but {bundle.family}'s text encoder "
            f"takes at most {limit}; the last {len(dropped)} word(s) do not fit (\"{shown}\"): shorten the caption, "
            "split it into sentences, or pass truncate=True"
        )
    if keep == 0:
        raise InputError(f"not even the first word of the caption fits the text encoder's {limit} tokens")
    warnings.warn(f"caption truncated to the text encoder's {limit} tokens; dropped {len(dropped)} word(s): "
                  f"\"{shown}\"", UserWarning, stacklevel=3)
    return " ".join(words[:keep]), dropped


def pool_positions(bundle: ModelBundle, input_ids: torch.Tensor) -> torch.Tensor:
    """(B,) position whose last hidden state the text encoder pools, as the family declares it
    (`text_pooling`: "eos" for CLIP, the end-of-text token; "last" for SigLIP, the last position)."""
    if bundle.adapter.text_pooling == "last":
        return torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long)
    eos = bundle.model.config.text_config.eos_token_id
    if eos == 2:  # legacy CLIP configs pool at the largest id, as transformers does for them
        return input_ids.argmax(-1).long()
    hit = (input_ids == eos).int()
    if not bool(hit.any(-1).all()):
        raise InputError("a caption has no end-of-text token after tokenization; the tokenizer must add it")
    return hit.argmax(-1).long()


def tokenize(bundle: ModelBundle, captions: Sequence[str], template: str, truncate: bool = False) -> TextBatch:
    """Check, fit and tokenize captions (template in front); map every token to a caption word."""
    tok = bundle.tokenizer
    if not getattr(tok, "is_fast", False):
        raise InputError("misalignment scoring needs a fast tokenizer (character offsets map tokens to words)")
    fitted = [check_caption(c, i if len(captions) > 1 else None) for i, c in enumerate(captions)]
    for caption in fitted:
        shown = caption if len(caption) <= 60 else caption[:57] + "..."
        check_known_words(tok, caption, f'the caption "{shown}"')
    dropped: list[list[str]] = [[] for _ in fitted]
    lengths = [len(ids) for ids in tok([template + c for c in fitted], verbose=False)["input_ids"]]
    for i, n in enumerate(lengths):
        if n > bundle.max_text_length:  # only over-long captions pay for the word-by-word fit
            fitted[i], dropped[i] = fit_caption(bundle, fitted[i], template, truncate)
    call: dict[str, Any] = {"return_offsets_mapping": True, "return_tensors": "pt",
                            "padding": getattr(bundle.adapter, "text_padding", True)}
    if call["padding"] == "max_length":
        call["max_length"] = bundle.max_text_length
    enc = tok([template + c for c in fitted], **call)
    device = bundle.device
    token_word = [token_words(offs.tolist(), word_spans(c), len(template))
                  for offs, c in zip(enc["offset_mapping"], fitted)]
    input_ids = enc["input_ids"]
    mask = enc.get("attention_mask")
    return TextBatch(
        captions=fitted,
        template=template,
        words=[c.split() for c in fitted],
        input_ids=input_ids.to(device),
        attention_mask=None if mask is None else mask.to(device),
        token_word=token_word,
        pool=pool_positions(bundle, input_ids).to(device),
        dropped=dropped,
    )


def prepare_images(bundle: ModelBundle, images: Sequence[Any]) -> Any:
    """Processor outputs for images (decoded with `load_image`: bad images raise `ImageError`)."""
    from egokit.data.images import load_image

    pil = [load_image(im) for im in images]
    return bundle.adapter.prepare(pil), pil


__all__ = [
    "METHOD",
    "PAPER_TEMPLATE",
    "ModelBundle",
    "TextBatch",
    "check_caption",
    "default_template",
    "fit_caption",
    "pool_positions",
    "prepare_images",
    "resolve_model",
    "tokenize",
]
