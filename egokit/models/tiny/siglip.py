"""Tiny random SigLIP with an offline word tokenizer.

Vision: 64×64 inputs (non-square images are stretched, as SigLIP's processor does), patch 8 → 8×8 patch
tokens and no class token; 2 layers × width 32 in both encoders; captions padded to 16 tokens.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from egokit.models.text import TINY_WORDS, word_tokenizer


def _merge(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(extra or {})
    return out


def build(
    seed: int = 0, attn_implementation: str = "sdpa", *, image_size: int = 64, **overrides: Any
) -> tuple[Any, Any]:
    """Build `(model, processor)`: a `SiglipModel` (fp32, eval mode) and a `SiglipProcessor`.

    overrides: `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
               keys set top-level config fields.
    """
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    max_text = 16
    tokenizer = word_tokenizer(
        TINY_WORDS, add_bos=False, add_eos=True, padding_side="right", model_max_length=max_text
    )
    image_processor = SiglipImageProcessorPil(
        **_merge(
            {"size": {"height": image_size, "width": image_size}}, overrides.pop("image_processor", None)
        )
    )
    width = 32
    text_config = _merge(
        {
            "vocab_size": len(tokenizer),
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": max_text,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        overrides.pop("text_config", None),
    )
    vision_config = _merge(
        {
            "image_size": image_size,
            "patch_size": 8,
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        overrides.pop("vision_config", None),
    )
    config = SiglipConfig(text_config=text_config, vision_config=vision_config, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SiglipModel._from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    return model.eval(), SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)
