"""Tiny random LLaVA-1.5 with an offline word tokenizer.

CLIP vision tower (64×64, patch 8, class token) → `vision_feature_select_strategy="default"` drops the class
token → 64 image tokens per image; MLP projector; Llama decoder 2 layers × width 32. The image processor
resizes the shortest side to 64 and center-crops, like LLaVA-1.5's CLIP processor.
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
    """Build `(model, processor)`: `LlavaForConditionalGeneration` (fp32, eval mode) and a `LlavaProcessor`.

    overrides: `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
               keys set top-level config fields (e.g. `vision_feature_select_strategy="full"`).
    """
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    patch, width = 8, 32
    tokenizer = word_tokenizer(
        TINY_WORDS, extra_special_tokens={"image_token": "<image>"}, model_max_length=1024
    )
    image_processor = CLIPImageProcessorPil(
        **_merge(
            {"size": {"shortest_edge": image_size}, "crop_size": {"height": image_size, "width": image_size}},
            overrides.pop("image_processor", None),
        )
    )
    text_config = _merge(
        {
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        overrides.pop("text_config", None),
    )
    vision_config = _merge(
        {
            "model_type": "clip_vision_model",
            "image_size": image_size,
            "patch_size": patch,
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        overrides.pop("vision_config", None),
    )
    settings = {
        "image_token_id": tokenizer.image_token_id,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "projector_hidden_act": "gelu",
        **overrides,
    }
    config = LlavaConfig(text_config=text_config, vision_config=vision_config, **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration._from_config(
            config, attn_implementation=attn_implementation, dtype=torch.float32
        )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    has_cls = vision_config["model_type"] == "clip_vision_model"
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision_config["patch_size"],
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1 if has_cls else 0,
        chat_template=tokenizer.chat_template,
    )
    return model.eval(), processor
