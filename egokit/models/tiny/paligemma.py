"""Tiny random PaliGemma with an offline tokenizer.

SigLIP-style vision tower on 64×64 inputs with patch 8: every image is 8×8 = 64 image tokens, placed first in
the prompt. The PaliGemma processor adds its 1152 `<locXXXX>`/`<segXXX>` tokens to the tokenizer; the model's
vocabulary covers them, so every id the tokenizer can produce has an embedding.
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
    """Build `(model, processor)`: Gemma text model 2×32 (head_dim 16), vision 2×32, fp32, eval mode.

    image_size: the vision tower's square input (patch 8), so `(image_size/8)²` image tokens per image.
    overrides:  `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
                keys set top-level config fields.
    """
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )

    patch = 8
    # No bos from the tokenizer: the PaliGemma processor writes bos itself, after the image tokens.
    tokenizer = word_tokenizer(
        TINY_WORDS, extra_special_tokens={"image_token": "<image>"}, add_bos=False, model_max_length=1024
    )
    image_processor = SiglipImageProcessorPil(
        **_merge(
            {
                "size": {"height": image_size, "width": image_size},
                "image_seq_length": (image_size // patch) ** 2,
            },
            overrides.pop("image_processor", None),
        )
    )
    processor = PaliGemmaProcessor(image_processor, tokenizer)  # adds the location/segmentation tokens
    vocab = len(tokenizer)

    width, heads = 32, 2
    text_config = _merge(
        {
            "model_type": "gemma",
            "vocab_size": vocab,
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 1,
            "head_dim": width // heads,
            "max_position_embeddings": 512,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        overrides.pop("text_config", None),
    )
    vision_config = _merge(
        {
            "model_type": "siglip_vision_model",
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "image_size": image_size,
            "patch_size": patch,
            "vision_use_head": False,
        },
        overrides.pop("vision_config", None),
    )
    config = PaliGemmaConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_index=tokenizer.image_token_id,
        vocab_size=vocab,
        projection_dim=text_config["hidden_size"],
        hidden_size=text_config["hidden_size"],
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PaliGemmaForConditionalGeneration._from_config(
            config, attn_implementation=attn_implementation, dtype=torch.float32
        )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval(), processor
