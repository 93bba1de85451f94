"""LLaVA-1.5 (`LlavaForConditionalGeneration`): a ViT tower, an MLP projector, a decoder language model.

Visual layout: each image fills a contiguous run of `config.image_token_id` tokens; several images follow
in order. The number of tokens per image comes from the processed pixels and the vision config, never
from a constant: the tower emits `n_cls + rows*cols` tokens (`rows = H // patch_size`, `cols = W //
patch_size`, `n_cls` = 1 for CLIP towers with a class token, 0 for SigLIP), and
`vision_feature_select_strategy == "default"` drops the first one. A class token kept by `"full"` fills an
image-token position but has no pixel box, so it is left out of `positions` (its `feature_index` is
skipped). Boxes are the patches mapped back through the image processor (pad to square if `do_pad`,
resize, center crop); what the crop cuts away is in no box (`extra["view"]` is the visible part).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from egokit.errors import InputError
from egokit.models.adapters.base import (
    GENERATES_TEXT,
    SOFT_VISUAL_TOKENS,
    WRAPPABLE_VIT,
    Adapter,
    ImageTokens,
    RealCheckpoint,
    TowerShape,
    register_adapter,
    register_real,
    register_tiny,
)
from egokit.models.adapters.common import (
    REAL_TEXT_CUT,
    REAL_VISION_CUT,
    attention_stack,
    chat_prompt,
    feature_list,
    group_images,
    load_images,
    merge_config,
    real_overrides,
    real_tokenizer,
    sizes_tensor,
    submodule,
    tiny_layers,
    tiny_model,
    tiny_token_ids,
    to_model,
    vlm_paths,
    without_private,
)
from egokit.models.geometry import (
    ORIGINAL_SIZES_KEY,
    grid_boxes,
    original_sizes,
    processor_pixel_map,
    visible_box,
)
from egokit.models.text import TINY_WORDS, word_tokenizer


@register_adapter
class LlavaAdapter(Adapter):
    """LLaVA-1.5 and other `LlavaForConditionalGeneration` checkpoints with a ViT tower."""

    family: ClassVar[str] = "llava"
    model_types: ClassVar[tuple[str, ...]] = ("llava",)
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATES_TEXT, SOFT_VISUAL_TOKENS, WRAPPABLE_VIT})
    paths: ClassVar[dict[str, tuple[str, ...]]] = vlm_paths(
        vision="vision_tower", vision_blocks=("encoder.layers", "vision_model.encoder.layers"),
        projector="multi_modal_projector", language="language_model")

    # -- structure -------------------------------------------------------------------------------------
    @property
    def config(self) -> Any:
        return self.model.config

    def attention_modules(self, part: str | None = None) -> list[nn.Module]:
        part = part or self.default_part
        if part == "language":
            return attention_stack(self.language_model)
        if part == "vision":
            return attention_stack(self.vision_tower)
        raise InputError(f"{self.family} has parts {', '.join(self.parts)}, not {part!r}")

    @property
    def image_token_id(self) -> int:
        return int(self.config.image_token_id)

    @property
    def image_token(self) -> str:
        token = getattr(self.processor, "image_token", None)
        if token is None:
            token = self.processor.tokenizer.convert_ids_to_tokens(self.image_token_id)
        return token

    @property
    def patch_size(self) -> int:
        return int(self.config.vision_config.patch_size)

    @property
    def tower_prefix_tokens(self) -> int:
        """Tokens the vision tower puts before its patches (1 for a class token, else 0)."""
        embeddings = submodule(self.vision_tower, "embeddings", "vision_model.embeddings")
        return 1 if getattr(embeddings, "class_embedding", None) is not None else 0

    @property
    def dropped_tokens(self) -> int:
        """Tokens the projector input drops from the front of the tower output ("default": 1)."""
        return 1 if self.config.vision_feature_select_strategy == "default" else 0

    # -- inputs ----------------------------------------------------------------------------------------
    def prompt(self, question: str, n_images: int = 1) -> str:
        fallback = "USER: " + f"{self.image_token}\n" * n_images + f"{question} ASSISTANT:"
        return chat_prompt(self.processor, question, n_images, fallback)

    def _texts_and_images(self, images: Any, text: str | list[str]) -> tuple[list[str], list[list[Any]]]:
        texts = [text] if isinstance(text, str) else list(text)
        groups = [load_images(g) for g in group_images(images, texts)]
        token = self.image_token
        texts = [self.prompt(t, len(g)) if g and token not in t else t for t, g in zip(texts, groups)]
        return texts, groups

    def prepare(self, images: list[Any] | None, text: str | list[str], **kwargs: Any) -> Any:
        """Processor outputs on the model's device, with the original image sizes recorded.

        `images`: None, a list for one text, one image per text, or one list per text. A text without the
        image token is wrapped with `prompt()` for its images.
        """
        texts, groups = self._texts_and_images(images, text)
        flat = [im for g in groups for im in g]
        call: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True, **kwargs}
        if flat:
            call["images"] = flat
        try:
            inputs = self.processor(**call)
        except ValueError as e:
            raise InputError(f"the processor refused the inputs: {e}") from e
        if flat:
            inputs[ORIGINAL_SIZES_KEY] = sizes_tensor(groups)
        return to_model(inputs, self.model)

    def model_inputs(self, inputs: Any) -> dict[str, Any]:
        return without_private(inputs)

    # -- layout ----------------------------------------------------------------------------------------
    def _image_token_positions(self, inputs: Any, batch_index: int) -> torch.Tensor:
        ids = inputs["input_ids"][batch_index]
        return torch.nonzero(ids == self.image_token_id).flatten().cpu()

    def _images_before(self, inputs: Any, batch_index: int, per_image: int) -> int:
        ids = inputs["input_ids"][:batch_index]
        return int((ids == self.image_token_id).sum()) // per_image

    def visual_layout(self, inputs: Any, batch_index: int = 0) -> list[ImageTokens]:
        pixel_values = inputs["pixel_values"]
        height, width = int(pixel_values.shape[-2]), int(pixel_values.shape[-1])
        p = self.patch_size
        rows, cols = height // p, width // p
        prefix = self.tower_prefix_tokens
        tower_ids = torch.arange(prefix + rows * cols)[self.dropped_tokens :]  # tower index of each feature
        per_image = int(tower_ids.numel())
        is_patch = tower_ids >= prefix
        feature_index = torch.nonzero(is_patch).flatten()
        patch_index = tower_ids[is_patch] - prefix
        positions = self._image_token_positions(inputs, batch_index)
        if positions.numel() % per_image:
            raise InputError(
                f"row {batch_index} has {positions.numel()} image tokens, not a multiple of {per_image} per "
                "image: the text was probably truncated; raise the tokenizer's max length"
            )
        first = self._images_before(inputs, batch_index, per_image)
        sizes = original_sizes(inputs)
        cells = grid_boxes(rows, cols, p, p)[patch_index]
        layout = []
        for k in range(positions.numel() // per_image):
            run = positions[k * per_image : (k + 1) * per_image]
            extra: dict[str, Any] = {"image_index": first + k, "tower_grid": (rows, cols)}
            if sizes is not None:
                size = sizes[first + k]
                pmap, processed = processor_pixel_map(self.processor.image_processor, size)
                boxes = pmap.boxes(cells)
                extra.update(coords="original", view=visible_box(pmap, processed))
            else:
                size, boxes = (height, width), cells.clone()
                extra.update(coords="processed", view=(0.0, 0.0, float(width), float(height)))
            if prefix and not self.dropped_tokens:
                extra["class_token_positions"] = run[~is_patch]
            layout.append(
                ImageTokens(
                    positions=run[feature_index],
                    boxes=boxes,
                    feature_index=feature_index.clone(),
                    grid=self._grid(rows, cols, patch_index),
                    image_size=size,
                    extra=extra,
                )
            )
        return layout

    @staticmethod
    def _grid(rows: int, cols: int, patch_index: torch.Tensor) -> tuple[int, int]:
        """The raster grid when every patch is present (the usual case); (1, n) when the default strategy
        dropped a patch of a tower without a class token (no full grid remains)."""
        if patch_index.numel() == rows * cols:
            return rows, cols
        return 1, int(patch_index.numel())

    # -- features --------------------------------------------------------------------------------------
    def image_features(self, inputs: Any) -> list[torch.Tensor]:
        """Projector outputs per image, (N, D) each: the rows that fill the image-token positions."""
        out = self.model.get_image_features(pixel_values=inputs["pixel_values"], return_dict=True)
        return feature_list(out)


# ---------------------------------------------------------------------------------------- tiny model


@register_tiny("llava")
def build_tiny_llava(
    seed: int = 0, attn_implementation: str = "sdpa", *, image_size: int = 64, tokenizer: Any = None,
    **overrides: Any
) -> tuple[Any, Any]:
    """Tiny random LLaVA-1.5 with an offline word tokenizer.

    CLIP vision tower (64×64, patch 8, class token) → `vision_feature_select_strategy="default"` drops the class
    token → 64 image tokens per image; MLP projector; Llama decoder 2 layers × width 32. The image processor
    resizes the shortest side to 64 and center-crops, like LLaVA-1.5's CLIP processor.

    Build `(model, processor)`: `LlavaForConditionalGeneration` (fp32, eval mode) and a `LlavaProcessor`.

    tokenizer: a tokenizer (with an `image_token`) to use instead of the tiny word tokenizer.
    overrides: `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
               keys set top-level config fields (e.g. `vision_feature_select_strategy="full"`).
    """
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    patch, width = 8, 32
    if tokenizer is None:
        tokenizer = word_tokenizer(
            TINY_WORDS, extra_special_tokens={"image_token": "<image>"}, model_max_length=1024
        )
    image_processor = CLIPImageProcessorPil(
        **merge_config(
            {"size": {"shortest_edge": image_size}, "crop_size": {"height": image_size, "width": image_size}},
            overrides.pop("image_processor", None),
        )
    )
    text_config = merge_config(
        {
            "model_type": "llama",
            **tiny_layers(width),
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            **tiny_token_ids(tokenizer),
        },
        overrides.pop("text_config", None),
    )
    vision_config = merge_config(
        {
            "model_type": "clip_vision_model",
            "image_size": image_size,
            "patch_size": patch,
            **tiny_layers(width),
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
    model = tiny_model(LlavaForConditionalGeneration, config, seed, attn_implementation, tokenizer)
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


# ------------------------------------------------------------------------------------- real geometry

#: llava-hf/llava-1.5-7b-hf (config.json): CLIP ViT-L/14-336 tower, Vicuna-7B (Llama-2) language model
LLAVA_1_5_7B = RealCheckpoint(
    "llava-hf/llava-1.5-7b-hf",
    text=TowerShape(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008,
                    num_key_value_heads=32, vocab_size=32064),
    vision=TowerShape(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
)

#: LLaVA-1.5's chat template form: `USER: <image>\n<question> ASSISTANT:` (images first, then the text)
LLAVA_1_5_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] != 'system' -%}{{ message['role'].upper() + ': ' }}{%- endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] + ' ' }}"
    "{%- else -%}"
    "{%- for item in message['content'] if item['type'] == 'image' -%}{{ '<image>\n' }}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'text' -%}{{ item['text'] + ' ' }}{%- endfor -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{{ eos_token }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)


@register_real("llava", llava=LLAVA_1_5_7B)
def build_real_llava(seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any) -> tuple[Any, Any]:
    """LLaVA with the geometry of `llava-hf/llava-1.5-7b-hf`, cut down to 2 layers per stack.

    Images: shortest edge resized to 336 (bicubic), center crop 336×336, OpenAI CLIP mean/std; CLIP tower with
    patch 14 and a class token → 1 + 24×24 outputs; `vision_feature_layer=-2`, `"default"` strategy drops the
    class token → 576 `<image>` tokens per image. Prompt: `USER: <image>\n<question> ASSISTANT:`.
    """
    tokenizer = real_tokenizer({"image_token": "<image>"}, LLAVA_1_5_TEMPLATE, model_max_length=4096)
    settings = real_overrides(
        {
            "image_size": 336,
            "vision_config": {**REAL_VISION_CUT, "patch_size": 14},
            "text_config": {**REAL_TEXT_CUT, "num_key_value_heads": REAL_TEXT_CUT["num_attention_heads"],
                            "max_position_embeddings": 4096},
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
        },
        overrides,
    )
    return build_tiny_llava(seed, attn_implementation, tokenizer=tokenizer, **settings)
