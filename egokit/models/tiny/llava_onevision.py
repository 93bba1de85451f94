"""Tiny random LLaVA-OneVision with an offline word tokenizer.

SigLIP vision tower (64×64 tiles, patch 8, no class token, `vision_feature_select_strategy="full"`) → 64
tokens per tile; Qwen2 decoder 2 layers × width 32. Grid pinpoints up to 256×256 (4×4 tiles), so a large
image exercises the `anyres_max_9` downsampling and a non-square one the unpadding.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from egokit.models.text import TINY_WORDS, word_tokenizer

PINPOINTS = [[64, 64], [64, 128], [128, 64], [128, 128], [64, 192], [192, 64], [256, 256]]


def _merge(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(extra or {})
    return out


def build(
    seed: int = 0, attn_implementation: str = "sdpa", *, image_size: int = 64, **overrides: Any
) -> tuple[Any, Any]:
    """Build `(model, processor)`: `LlavaOnevisionForConditionalGeneration` (fp32, eval mode) and an
    image-only OneVision processor.

    overrides: `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
               keys set top-level config fields (e.g. `image_grid_pinpoints`, `vision_aspect_ratio`).
    """
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    from egokit.models.adapters.llava_onevision import LlavaOnevisionImageOnlyProcessor

    patch, width = 8, 32
    tokenizer = word_tokenizer(
        TINY_WORDS,
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        model_max_length=4096,
    )
    settings = {
        "image_token_id": tokenizer.image_token_id,
        "video_token_id": tokenizer.video_token_id,
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
        "image_grid_pinpoints": copy.deepcopy(PINPOINTS),
        "vision_aspect_ratio": "anyres_max_9",
        **overrides,
    }
    image_processor = LlavaOnevisionImageProcessorPil(
        **_merge(
            {
                "size": {"height": image_size, "width": image_size},
                "image_grid_pinpoints": copy.deepcopy(settings["image_grid_pinpoints"]),
            },
            settings.pop("image_processor", None),
        )
    )
    text_config = _merge(
        {
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        settings.pop("text_config", None),
    )
    vision_config = _merge(
        {
            "model_type": "siglip_vision_model",
            "image_size": image_size,
            "patch_size": patch,
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        settings.pop("vision_config", None),
    )
    config = LlavaOnevisionConfig(text_config=text_config, vision_config=vision_config, **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration._from_config(
            config, attn_implementation=attn_implementation, dtype=torch.float32
        )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    side = image_size // vision_config["patch_size"]
    processor = LlavaOnevisionImageOnlyProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=side * side,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=tokenizer.chat_template,
        vision_aspect_ratio=config.vision_aspect_ratio,
    )
    return model.eval(), processor
