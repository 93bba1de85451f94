"""Generating text, the one way the kit does it: greedy decoding that stops at the model's end tokens.

- `eos_ids(model, tokenizer)`: every id that ends an answer (the generation config's, the config's and,
  given a tokenizer, the tokenizer's end-of-sequence ids; with `include_pad`, the padding id too).
- `greedy_ids(model, model_inputs, ...)`: `model.generate` without sampling on prepared inputs (batch row
  0), the new token ids up to the first end id.

Methods and recipes that generate call these; none keeps its own loop or its own list of end ids.
"""

from __future__ import annotations

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


__all__ = ["eos_ids", "greedy_ids"]
