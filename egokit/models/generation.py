"""Generating text, the one way the kit does it: greedy decoding that stops at the model's end tokens.

- `eos_ids(model, tokenizer)`: every id that ends an answer (the generation config's, the config's and,
  given a tokenizer, the tokenizer's end-of-sequence ids; with `include_pad`, the padding id too).
- `greedy_ids(model, model_inputs, ...)`: `model.generate` without sampling on prepared inputs (batch row
  0), the new token ids up to the first end id.
- `greedy_from_embeds(model, inputs_embeds, ...)`: greedy decoding with a KV cache from input embeddings
  (contexts with soft visual tokens, `egokit.models.context`), a batch at once (left-padded rows); every
  row's new token ids up to its first end id, and the logits of the first answer token.
  `next_token_logits` is its first step alone.

Methods and recipes that generate call these; none keeps its own loop or its own list of end ids.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch


def eos_ids(model: Any, tokenizer: Any = None, include_pad: bool = False) -> set[int]:
    """The ids that end an answer of `model` (see the module docstring)."""
    ids: set[int] = set()
    sources = [getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer]
    for source in sources:
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if include_pad and tokenizer is not None and getattr(tokenizer, "pad_token_id", None) is not None:
        ids.add(int(tokenizer.pad_token_id))
    return ids


def greedy_ids(model: Any, model_inputs: dict[str, Any], max_new_tokens: int, tokenizer: Any = None,
               include_pad: bool = False) -> list[int]:
    """Greedy answer of batch row 0: the generated ids after the prompt, cut at the first end id."""
    start = model_inputs["input_ids"].shape[1]
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    if tokenizer is not None and getattr(tokenizer, "pad_token_id", None) is not None:
        kwargs["pad_token_id"] = tokenizer.pad_token_id
    with torch.no_grad():
        out = model.generate(**model_inputs, **kwargs)
    new = out[0, start:].tolist()
    stop = eos_ids(model, tokenizer, include_pad)
    cut = next((k for k, i in enumerate(new) if i in stop), len(new))
    return new[:cut]


@dataclass
class Greedy:
    """What `greedy_from_embeds` returns: per row, the new token ids up to (without) the first end id,
    and the float32 logits (B, vocab) of the first answer token."""

    token_ids: list[list[int]]
    first_logits: torch.Tensor


@torch.no_grad()
def greedy_from_embeds(model: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                       position_ids: torch.Tensor | None = None, max_new_tokens: int = 1,
                       stop: set[int] | None = None) -> Greedy:
    """Greedy answers of a batch of contexts given as input embeddings (B, L, D).

    attention_mask: (B, L), 0 on left padding (default: no padding).
    position_ids:   (B, L) or (3, B, L) for M-RoPE; default: counted from each row's first token. New
                    tokens continue from each row's largest position (on every axis).
    max_new_tokens: 0 runs the first step only (`first_logits`, no token).
    stop:           end ids (default `eos_ids(model)`); a row ends at its first end id, the batch when
                    every row has ended or after `max_new_tokens`.
    """
    batch, length = inputs_embeds.shape[:2]
    device = inputs_embeds.device
    mask = attention_mask if attention_mask is not None else torch.ones((batch, length), dtype=torch.long,
                                                                        device=device)
    if position_ids is None:
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=position_ids,
                use_cache=max_new_tokens > 1)
    logits = out.logits[:, -1].float()
    first = logits
    stop = eos_ids(model) if stop is None else set(stop)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    ended = [False] * batch
    key = _cache_key(model)
    cache = out.get(key)
    if position_ids.dim() == 3:  # M-RoPE: every axis continues from the row's largest position
        top = position_ids.amax(dim=(0, 2)).view(1, batch, 1)
        next_pos = (top + 1).expand(position_ids.shape[0], batch, 1).contiguous()
    else:
        next_pos = position_ids.amax(dim=-1, keepdim=True) + 1
    embed = model.get_input_embeddings()
    for step in range(max_new_tokens):
        chosen = logits.argmax(-1)
        for b, token in enumerate(chosen.tolist()):
            if ended[b]:
                continue
            if token in stop:
                ended[b] = True
            else:
                tokens[b].append(token)
        if all(ended) or step + 1 == max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        out = model(inputs_embeds=embed(chosen[:, None].to(device)), attention_mask=mask,
                    position_ids=next_pos + step, use_cache=True, **{key: cache})
        cache = out.get(key)
        logits = out.logits[:, -1].float()
    return Greedy(token_ids=tokens, first_logits=first)


def _cache_key(model: Any) -> str:
    """The name of the KV-cache argument and output ("cache" in recent transformers, else "past_key_values")."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def next_token_logits(model: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B, vocab) float32 logits of the first answer token of each context (`greedy_from_embeds`' first step)."""
    return greedy_from_embeds(model, inputs_embeds, attention_mask, position_ids, max_new_tokens=0).first_logits


__all__ = ["Greedy", "eos_ids", "greedy_from_embeds", "greedy_ids", "next_token_logits"]
