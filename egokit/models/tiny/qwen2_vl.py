"""Tiny random Qwen2-VL / Qwen2.5-VL with an offline tokenizer and an image-only processor.

Patch 8, merge 2: a 64×64 image becomes an 8×8 patch grid and 4×4 = 16 language-model tokens. Images of other
sizes are resized by `smart_resize` (multiples of 16 pixels, between `min_pixels` and `max_pixels`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from egokit.models.processors import Qwen2_5_VLImageOnlyProcessor, Qwen2VLImageOnlyProcessor
from egokit.models.text import TINY_WORDS, word_tokenizer

SPECIAL = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}

VARIANTS = ("qwen2_vl", "qwen2_5_vl")


def _merge(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(extra or {})
    return out


def build(
    seed: int = 0,
    attn_implementation: str = "sdpa",
    *,
    variant: str = "qwen2_vl",
    min_pixels: int = 32 * 32,
    max_pixels: int = 64 * 64,
    **overrides: Any,
) -> tuple[Any, Any]:
    """Build `(model, processor)`: 2 text layers of width 32, 2 vision layers, the tiny word vocabulary,
    fp32, eval mode.

    variant:     "qwen2_vl" or "qwen2_5_vl".
    min_pixels, max_pixels: the image processor's pixel-count bounds (`smart_resize`).
    overrides:   `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
                 keys set top-level config fields.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown Qwen2-VL variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    from transformers import Qwen2VLImageProcessorPil

    tokenizer = word_tokenizer(
        TINY_WORDS,
        extra_special_tokens=SPECIAL,
        image_placeholder=SPECIAL["vision_start_token"]
        + SPECIAL["image_token"]
        + SPECIAL["vision_end_token"],
        model_max_length=1024,
    )
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in SPECIAL.items()}
    patch, merge = 8, 2

    image_processor = Qwen2VLImageProcessorPil(
        **_merge(
            {
                "patch_size": patch,
                "merge_size": merge,
                "temporal_patch_size": 2,
                "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels},
            },
            overrides.pop("image_processor", None),
        )
    )
    processor_cls = Qwen2VLImageOnlyProcessor if variant == "qwen2_vl" else Qwen2_5_VLImageOnlyProcessor
    processor = processor_cls(image_processor, tokenizer, chat_template=tokenizer.chat_template)

    width, heads = 32, 2
    text_config = _merge(
        {
            "vocab_size": len(tokenizer),
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": heads,
            "max_position_embeddings": 512,
            # head_dim 16 -> 8 rotary frequencies split over (temporal, height, width)
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        overrides.pop("text_config", None),
    )
    vision_common = {
        "depth": 2,
        "num_heads": heads,
        "patch_size": patch,
        "spatial_merge_size": merge,
        "temporal_patch_size": 2,
        "in_channels": 3,
    }
    if variant == "qwen2_vl":
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model

        vision_config = {
            **vision_common,
            "embed_dim": width,
            "hidden_size": text_config["hidden_size"],
            "mlp_ratio": 2,
        }
    else:
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model

        vision_config = {
            **vision_common,
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "out_hidden_size": text_config["hidden_size"],
            "window_size": 2 * patch * merge,  # windows of 2×2 merged tokens
            "fullatt_block_indexes": [1],
        }
    vision_config = _merge(vision_config, overrides.pop("vision_config", None))

    config = Config(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["image_token"],
        video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"],
        vision_end_token_id=ids["vision_end_token"],
        **overrides,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Model._from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval(), processor
