"""Predict, before anything runs, what attention capture will cost in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class AttentionMemory:
    """Bytes held by captured attention for one forward pass.

    full_bytes:     `output_attentions=True` (eager): layers × batch × heads × seq_len² in the model's dtype.
    targeted_bytes: targeted capture: layers × batch × heads × query rows × key columns, float32.
    """

    layers: int
    heads: int
    seq_len: int
    query_rows: int
    key_cols: int
    full_bytes: int
    targeted_bytes: int

    @property
    def ratio(self) -> float:
        return self.full_bytes / max(self.targeted_bytes, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio}


def _text_config(config: Any) -> Any:
    for name in ("text_config", "language_config", "llm_config"):
        sub = getattr(config, name, None)
        if sub is not None and getattr(sub, "num_attention_heads", None):
            return sub
    return config


def estimate_attention_memory(config: Any, seq_len: int, query_rows: int = 10, key_cols: int | None = None,
                              layers: int | None = None, batch: int = 1, dtype: torch.dtype | str | None = None
                              ) -> AttentionMemory:
    """Bytes of full `output_attentions` versus targeted capture for a model config and sequence length.

    `config` is a transformers config (for a VLM the language model's sub-config is used); `layers` is how
    many layers are captured (default: all of them); `key_cols` defaults to the whole sequence.
    """
    cfg = _text_config(config)
    n_layers = int(cfg.num_hidden_layers)
    heads = int(cfg.num_attention_heads)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype is None:
        dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None) or torch.float32
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, torch.float32)
    elem = torch.empty((), dtype=dtype).element_size()
    keys = seq_len if key_cols is None else int(key_cols)
    captured_layers = n_layers if layers is None else int(layers)
    full = n_layers * batch * heads * seq_len * seq_len * elem
    targeted = captured_layers * batch * heads * query_rows * keys * 4
    return AttentionMemory(captured_layers, heads, seq_len, query_rows, keys, full, targeted)
