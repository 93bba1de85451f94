"""Tiny random Idefics3 / SmolVLM with an offline tokenizer.

Views of 64×64 pixels, patch 8, pixel-shuffle scale 2: every view is 4×4 = 16 language-model tokens. By default
images are resized to a longest edge of 64 (one view, 16 tokens). Pass `longest_edge=128` (or more) to turn
on image splitting: a 64×64 image then becomes 2×2 tiles plus a global view (80 tokens).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from egokit.models.processors import SmolVLMImageOnlyProcessor
from egokit.models.text import TINY_WORDS, word_tokenizer

MAX_TILES_SIDE = 6  # the processors know <row_1_col_1> .. <row_6_col_6>
SPECIAL = {
    "image_token": "<image>",
    "fake_image_token": "<fake_token_around_image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
    **{
        f"row_{r}_col_{c}_token": f"<row_{r}_col_{c}>"
        for r in range(1, MAX_TILES_SIDE + 1)
        for c in range(1, MAX_TILES_SIDE + 1)
    },
}

VARIANTS = ("idefics3", "smolvlm")


def _merge(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(extra or {})
    return out


def build(
    seed: int = 0,
    attn_implementation: str = "sdpa",
    *,
    variant: str = "idefics3",
    longest_edge: int = 64,
    do_image_splitting: bool = True,
    **overrides: Any,
) -> tuple[Any, Any]:
    """Build `(model, processor)`: Llama text model 2×32, SigLIP-style vision 2×32, tiny word vocabulary, fp32,
    eval mode.

    variant:      "idefics3" or "smolvlm".
    longest_edge: the image processor resizes the longest image edge to this before splitting into 64-pixel tiles.
    overrides:    `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
                  keys set top-level config fields.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown Idefics3 variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    tokenizer = word_tokenizer(TINY_WORDS, extra_special_tokens=SPECIAL, model_max_length=4096)
    tile, patch, scale = 64, 8, 2
    image_seq_len = (tile // patch // scale) ** 2
    image_kwargs = _merge(
        {
            "size": {"longest_edge": longest_edge},
            "max_image_size": {"longest_edge": tile},
            "do_image_splitting": do_image_splitting,
        },
        overrides.pop("image_processor", None),
    )
    width, heads = 32, 2
    text_config = _merge(
        {
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": heads,
            "max_position_embeddings": 1024,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        overrides.pop("text_config", None),
    )
    vision_config = _merge(
        {
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "image_size": tile,
            "patch_size": patch,
        },
        overrides.pop("vision_config", None),
    )
    if variant == "idefics3":
        from transformers import Idefics3Config as Config
        from transformers import Idefics3ForConditionalGeneration as Model
        from transformers import Idefics3ImageProcessorPil as ImageProcessor
        from transformers import Idefics3Processor as Processor
    else:
        from transformers import SmolVLMConfig as Config
        from transformers import SmolVLMForConditionalGeneration as Model
        from transformers import SmolVLMImageProcessorPil as ImageProcessor

        Processor = SmolVLMImageOnlyProcessor

    processor = Processor(
        ImageProcessor(**image_kwargs),
        tokenizer,
        image_seq_len=image_seq_len,
        chat_template=tokenizer.chat_template,
    )
    config = Config(
        text_config=text_config,
        vision_config=vision_config,
        scale_factor=scale,
        image_token_id=tokenizer.image_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Model._from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval(), processor
