"""Qwen2-VL and Qwen2.5-VL: dynamic resolution, merged patches, M-RoPE.

Layout, from the processor's outputs and the vision config only:
- the image processor resizes each image with `smart_resize` to multiples of `patch_size * merge_size`
  (aspect ratio kept, pixel count clamped), then cuts it into `image_grid_thw = (t, h, w)` patches;
- the vision merger joins each `merge × merge` block of patches into one language-model token, so an image
  has `t * (h/merge) * (w/merge)` tokens (`<|image_pad|>` in the prompt), in raster order over the blocks;
- the resize covers the whole picture (no crop, no pad), so token (r, c) of an `R × C` token grid covers
  the same fraction of the original image: x in [c·W/C, (c+1)·W/C), y in [r·H/R, (r+1)·H/R).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

from egokit.errors import InputError
from egokit.models.adapters.base import (
    GENERATES_TEXT,
    SOFT_VISUAL_TOKENS,
    ImageTokens,
    RealCheckpoint,
    TowerShape,
    register_adapter,
    register_real,
    register_tiny,
)
from egokit.models.adapters.common import (
    REAL_TEXT_CUT,
    feature_list,
    merge_config,
    real_overrides,
    real_tokenizer,
    tiny_model,
    tiny_token_ids,
    vlm_paths,
)
from egokit.models.adapters.vlm import VLMAdapter
from egokit.models.geometry import grid_boxes
from egokit.models.processors import PROCESSOR_CLASSES, StockNameMixin
from egokit.models.text import TINY_WORDS, word_tokenizer


class _ImageOnly:
    """The processors' `__init__` without a video processor (images and text only)."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)  # type: ignore[call-arg]


class Qwen2VLImageOnlyProcessor(StockNameMixin, _ImageOnly, Qwen2VLProcessor):
    """`Qwen2VLProcessor` without the video processor (images and text only)."""

    stock_class_name = "Qwen2VLProcessor"


class Qwen2_5_VLImageOnlyProcessor(StockNameMixin, _ImageOnly, Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` without the video processor (images and text only)."""

    stock_class_name = "Qwen2_5_VLProcessor"


PROCESSOR_CLASSES["qwen2_vl"] = Qwen2VLImageOnlyProcessor
PROCESSOR_CLASSES["qwen2_5_vl"] = Qwen2_5_VLImageOnlyProcessor


@register_adapter
class Qwen2VLAdapter(VLMAdapter):
    """Adapter for `Qwen2VLForConditionalGeneration` and `Qwen2_5_VLForConditionalGeneration`."""

    family = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    capabilities = frozenset({GENERATES_TEXT, SOFT_VISUAL_TOKENS})
    rope = "mrope"
    #: the projector is the patch merger: its output rows are the image tokens' input embeddings
    paths = {
        **vlm_paths(vision="visual", vision_blocks=("blocks",), projector="visual.merger", language="language_model"),
        #: the module that owns `get_rope_index` (M-RoPE positions of a token sequence with images)
        "rope_index": ("model",),
    }
    block_paths = {"attention": ("attn",)}

    # -- structure -------------------------------------------------------------------------------------
    def attention_modules(self, part: str | None = None) -> list[nn.Module]:
        part = part or self.default_part
        if part == "language":
            return [layer.self_attn for layer in self.module("language_blocks")]
        if part == "vision":
            return [block.attn for block in self.module("vision_blocks")]
        raise InputError(f"{self.family} has no {part!r} part; choose one of {', '.join(self.parts)}")

    @property
    def merge_size(self) -> int:
        return int(self.model.config.vision_config.spatial_merge_size)

    @property
    def patch_size(self) -> int:
        return int(self.model.config.vision_config.patch_size)

    # -- inputs ----------------------------------------------------------------------------------------
    def plain_prompt(self, question: str, n_images: int) -> str:
        return f"<|vision_start|>{self.image_token}<|vision_end|>" * n_images + question

    def model_inputs(self, inputs: Any) -> dict[str, Any]:
        out = super().model_inputs(inputs)
        ids = out.get("input_ids")
        if ids is not None and out.get("mm_token_type_ids") is None:
            # M-RoPE needs to know which positions hold image (1) and video (2) tokens.
            config = self.model.config
            types = (ids == self.image_token_id).int()
            video_id = getattr(config, "video_token_id", None)
            if video_id is not None:
                types = types + 2 * (ids == int(video_id)).int()
            out["mm_token_type_ids"] = types
        return out

    # -- layout ----------------------------------------------------------------------------------------
    def _tokens_per_image(self, inputs: Any) -> list[int]:
        grid = inputs.get("image_grid_thw")
        if grid is None:
            return []
        m2 = self.merge_size**2
        return [int(t * h * w) // m2 for t, h, w in torch.as_tensor(grid).tolist()]

    def _images_of_row(self, inputs: Any, batch_index: int) -> tuple[int, int]:
        """(index of the row's first image in `image_grid_thw`, number of images in the row)."""
        ids = inputs["input_ids"]
        counts = self._tokens_per_image(inputs)
        token_id = self.image_token_id
        first = 0
        for row in range(batch_index + 1):
            want = int((ids[row] == token_id).sum())
            n, got = 0, 0
            while got < want and first + n < len(counts):
                got += counts[first + n]
                n += 1
            if got != want:
                raise InputError(
                    f"batch row {row} holds {want} image tokens, which does not match image_grid_thw; "
                    "prepare inputs with adapter.prepare(images, text)"
                )
            if row < batch_index:
                first += n
        return first, n

    def visual_layout(self, inputs: Any, batch_index: int = 0) -> list[ImageTokens]:
        first, count = self._images_of_row(inputs, batch_index)
        if count == 0:
            return []
        grids = torch.as_tensor(inputs["image_grid_thw"]).tolist()[first : first + count]
        m, p = self.merge_size, self.patch_size
        processed = [(int(h) * p, int(w) * p) for _, h, w in grids]
        sizes, coords = self.sizes_for(inputs, first, count, processed)
        positions = torch.nonzero(inputs["input_ids"][batch_index] == self.image_token_id).flatten().cpu()
        layout: list[ImageTokens] = []
        start = 0
        for k, ((t, h, w), (height, width), resized) in enumerate(zip(grids, sizes, processed)):
            rows, cols = int(h) // m, int(w) // m
            n = int(t) * rows * cols
            boxes = grid_boxes(rows, cols, height / rows, width / cols).repeat(int(t), 1)
            layout.append(
                ImageTokens(
                    positions=positions[start : start + n],
                    boxes=boxes,
                    feature_index=torch.arange(n),
                    grid=(rows, cols),
                    image_size=(int(height), int(width)),
                    extra={
                        "image_index": first + k,
                        "coords": coords,
                        "view": (0.0, 0.0, float(width), float(height)),
                        "resized_size": resized,
                        "patch_grid": (int(h), int(w)),
                        "merge_size": m,
                        "frames": int(t),
                    },
                )
            )
            start += n
        return layout

    def image_features(self, inputs: Any) -> list[torch.Tensor]:
        pixel_values = inputs.get("pixel_values")
        if pixel_values is None:
            return []
        out = self.base.get_image_features(pixel_values=pixel_values, image_grid_thw=inputs["image_grid_thw"])
        return feature_list(out)


# ---------------------------------------------------------------------------------------- tiny model


TINY_SPECIAL = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}

TINY_VARIANTS = ("qwen2_vl", "qwen2_5_vl")




@register_tiny("qwen2_vl")
def build_tiny_qwen2_vl(
    seed: int = 0,
    attn_implementation: str = "sdpa",
    *,
    variant: str = "qwen2_vl",
    min_pixels: int = 32 * 32,
    max_pixels: int = 64 * 64,
    tokenizer: Any = None,
    **overrides: Any,
) -> tuple[Any, Any]:
    """Tiny random Qwen2-VL / Qwen2.5-VL with an offline tokenizer and an image-only processor.

    Patch 8, merge 2: a 64×64 image becomes an 8×8 patch grid and 4×4 = 16 language-model tokens. Images of other
    sizes are resized by `smart_resize` (multiples of 16 pixels, between `min_pixels` and `max_pixels`).

    Build `(model, processor)`: 2 text layers of width 32, 2 vision layers, the tiny word vocabulary,
    fp32, eval mode.

    variant:     "qwen2_vl" or "qwen2_5_vl".
    min_pixels, max_pixels: the image processor's pixel-count bounds (`smart_resize`).
    tokenizer:   a tokenizer with the four special tokens of `TINY_SPECIAL`, instead of the tiny word tokenizer.
    overrides:   `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
                 keys set top-level config fields.
    """
    if variant not in TINY_VARIANTS:
        raise ValueError(f"unknown Qwen2-VL variant {variant!r}; choose one of {', '.join(TINY_VARIANTS)}")
    from transformers import Qwen2VLImageProcessorPil

    if tokenizer is None:
        tokenizer = word_tokenizer(
            TINY_WORDS,
            extra_special_tokens=TINY_SPECIAL,
            image_placeholder=TINY_SPECIAL["vision_start_token"]
            + TINY_SPECIAL["image_token"]
            + TINY_SPECIAL["vision_end_token"],
            model_max_length=1024,
        )
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in TINY_SPECIAL.items()}
    patch, merge = 8, 2

    image_processor = Qwen2VLImageProcessorPil(
        **merge_config(
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
    text_config = merge_config(
        {
                        "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": heads,
            "max_position_embeddings": 512,
            # head_dim 16 -> 8 rotary frequencies split over (temporal, height, width)
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            **tiny_token_ids(tokenizer),
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
    vision_config = merge_config(vision_config, overrides.pop("vision_config", None))

    config = Config(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["image_token"],
        video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"],
        vision_end_token_id=ids["vision_end_token"],
        **overrides,
    )
    model = tiny_model(Model, config, seed, attn_implementation, tokenizer)
    return model.eval(), processor


# ------------------------------------------------------------------------------------- real geometry

#: Qwen/Qwen2-VL-2B-Instruct (config.json): a 32-block ViT of width 1280 (MLP ratio 4), a 28-layer language model
QWEN2_VL_2B = RealCheckpoint(
    "Qwen/Qwen2-VL-2B-Instruct",
    text=TowerShape(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, intermediate_size=8960,
                    num_key_value_heads=2, vocab_size=151936),
    vision=TowerShape(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120),
)
#: its preprocessor_config.json pixel bounds (`smart_resize`): 56×56 … 12845056 pixels
QWEN2_VL_MIN_PIXELS, QWEN2_VL_MAX_PIXELS = 3136, 12845056

#: Qwen2-VL's chat template form: a default system turn, then `<|im_start|>user\n<|vision_start|><|image_pad|>
#: <|vision_end|><question><|im_end|>\n<|im_start|>assistant\n`
QWEN2_VL_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
QWEN2_VL_SPECIAL = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", **TINY_SPECIAL,
                    "im_start": "<|im_start|>"}


@register_real("qwen2_vl", qwen2_vl=QWEN2_VL_2B)
def build_real_qwen2_vl(seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any) -> tuple[Any, Any]:
    """Qwen2-VL with the geometry of `Qwen/Qwen2-VL-2B-Instruct`, 2 layers per stack (language width 64).

    Images: `smart_resize` to multiples of 28 between 3136 and 12845056 pixels (bicubic, OpenAI CLIP
    mean/std), patch 14, temporal patch 2, merge 2 → (H/28)·(W/28) `<|image_pad|>` tokens; M-RoPE sections in
    the checkpoint's 16:24:24 proportion.
    """
    tokenizer = real_tokenizer(QWEN2_VL_SPECIAL, QWEN2_VL_TEMPLATE, words=("system", "helpful"),
                               model_max_length=32768)
    heads = REAL_TEXT_CUT["num_attention_heads"]
    half = REAL_TEXT_CUT["hidden_size"] // heads // 2  # rotary frequencies per head, split 2:3:3 like 16:24:24
    settings = real_overrides(
        {
            "min_pixels": QWEN2_VL_MIN_PIXELS,
            "max_pixels": QWEN2_VL_MAX_PIXELS,
            "image_processor": {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2},
            "vision_config": {"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
            "text_config": {
                **REAL_TEXT_CUT,
                "max_position_embeddings": 32768,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                    "mrope_section": [half // 4, 3 * half // 8, 3 * half // 8]},
            },
        },
        overrides,
    )
    return build_tiny_qwen2_vl(seed, attn_implementation, tokenizer=tokenizer, **settings)
