"""CLIP and SigLIP: dual encoders (text + vision), not generative.

Visual layout: the vision encoder's patch tokens. Positions are indices in the *vision* sequence (CLIP
puts a class token first, so patches start at 1; SigLIP has none, so they start at 0); the grid is the
processed image's size divided by the patch size; boxes are the patches' pixels mapped back through the
image processor's resize and center crop (CLIP) or plain resize (SigLIP, which stretches non-square
images). Parts of the original image cut away by the center crop belong to no token: the union of the
boxes is the crop's footprint, given as `extra["view"]`.

`image_features` are per-patch embeddings in the joint image-text space where the family has one:
CLIP applies its `post_layernorm` and `visual_projection` to every patch token, exactly as it does to the
class token (the "dense CLIP" reading). SigLIP has no projection (its pooled embedding comes from an
attention-pooling head), so its per-patch features are the post-layernormed last hidden states.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from egokit.errors import InputError
from egokit.models.adapters.base import (
    DUAL_ENCODER,
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
    attention_stack,
    group_images,
    load_images,
    merge_config,
    real_overrides,
    real_tokenizer,
    sizes_tensor,
    tiny_layers,
    tiny_model,
    tiny_token_ids,
    to_model,
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
class ClipAdapter(Adapter):
    """`CLIPModel`: parts "text" and "vision" (each encoder's `self_attn` per layer)."""

    family: ClassVar[str] = "clip"
    model_types: ClassVar[tuple[str, ...]] = ("clip",)
    parts: ClassVar[tuple[str, ...]] = ("text", "vision")
    default_part: ClassVar[str] = "vision"
    capabilities: ClassVar[frozenset[str]] = frozenset({DUAL_ENCODER, WRAPPABLE_VIT})
    rope: ClassVar[str] = "none"
    paths: ClassVar[dict[str, tuple[str, ...]]] = {
        "vision": ("vision_model",),
        "vision_blocks": ("vision_model.encoder.layers",),
        "image_projection": ("visual_projection",),
        "text": ("text_model",),
        "text_blocks": ("text_model.encoder.layers",),
        "text_embeddings": ("text_model.embeddings.token_embedding",),
    }
    #: tokens before the patches in the vision sequence (CLIP's class token)
    vision_prefix_tokens: ClassVar[int] = 1
    #: padding used for captions ("max_length" for SigLIP, trained with fixed-length text)
    text_padding: ClassVar[bool | str] = True
    #: which position the text encoder pools: "eos" (the end-of-text token) or "last" (the last position)
    text_pooling: ClassVar[str] = "eos"

    # -- structure -------------------------------------------------------------------------------------
    def encoder(self, part: str | None = None) -> nn.Module:
        """The text or vision transformer (`model.text_model` / `model.vision_model`)."""
        part = part or self.default_part
        if part not in self.parts:
            raise InputError(f"{self.family} has parts {', '.join(self.parts)}, not {part!r}")
        return self.module(part)

    def attention_modules(self, part: str | None = None) -> list[nn.Module]:
        return attention_stack(self.encoder(part))

    @property
    def max_text_length(self) -> int:
        """Longest token sequence the text encoder accepts (its position embeddings)."""
        return int(self.model.config.text_config.max_position_embeddings)

    @property
    def patch_size(self) -> int:
        return int(self.model.config.vision_config.patch_size)

    # -- inputs ----------------------------------------------------------------------------------------
    def prompt(self, question: str, n_images: int = 1) -> str:
        """A dual encoder has no chat: the caption is the text."""
        return question

    def prepare(self, images: list[Any] | None, text: str | list[str] | None = None, **kwargs: Any) -> Any:
        """Captions and/or images → processor outputs on the model's device.

        Images and texts are independent batches here (CLIP scores every image against every text).
        Raises `InputError` for a caption longer than the text encoder's limit (`max_text_length`).
        """
        if images is None and text is None:
            raise InputError("give images, text, or both")
        call: dict[str, Any] = {"return_tensors": "pt"}
        flat: list[Any] = []
        if images is not None:
            flat = load_images(group_images(images, ["_"])[0])
            call["images"] = flat
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            self._check_lengths(texts)
            call["text"] = texts
            call["padding"] = self.text_padding
            if self.text_padding == "max_length":
                call["max_length"] = self.max_text_length
        call.update(kwargs)
        inputs = self.processor(**call)
        if flat:
            inputs[ORIGINAL_SIZES_KEY] = sizes_tensor([flat])
        return to_model(inputs, self.model)

    def _check_lengths(self, texts: list[str]) -> None:
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        for i, t in enumerate(texts):
            n = len(tokenizer(t)["input_ids"])
            if n > self.max_text_length:
                raise InputError(
                    f"caption {i} is {n} tokens long; {self.family}'s text encoder takes at most "
                    f"{self.max_text_length}: shorten it or split it into sentences"
                )

    def model_inputs(self, inputs: Any) -> dict[str, Any]:
        return without_private(inputs)

    # -- layout ----------------------------------------------------------------------------------------
    def visual_layout(self, inputs: Any, batch_index: int = 0) -> list[ImageTokens]:
        """The patch tokens of image `batch_index` (one image per batch row of `pixel_values`)."""
        pixel_values = inputs["pixel_values"]
        height, width = int(pixel_values.shape[-2]), int(pixel_values.shape[-1])
        p = self.patch_size
        rows, cols = height // p, width // p
        n = rows * cols
        sizes = original_sizes(inputs)
        boxes = grid_boxes(rows, cols, p, p)
        extra: dict[str, Any] = {"sequence": "vision", "prefix_tokens": self.vision_prefix_tokens}
        if sizes is not None:
            pmap, processed = processor_pixel_map(self.processor.image_processor, sizes[batch_index])
            boxes = pmap.boxes(boxes)
            size = sizes[batch_index]
            extra.update(coords="original", view=visible_box(pmap, processed))
        else:
            size = (height, width)
            extra.update(coords="processed", view=(0.0, 0.0, float(width), float(height)))
        return [
            ImageTokens(
                positions=torch.arange(n) + self.vision_prefix_tokens,
                boxes=boxes,
                feature_index=torch.arange(n),
                grid=(rows, cols),
                image_size=size,
                extra=extra,
            )
        ]

    # -- features --------------------------------------------------------------------------------------
    def patch_states(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, N, D) last hidden states of the patch tokens (class token removed)."""
        out = self.module("vision")(pixel_values=pixel_values)
        return out.last_hidden_state[:, self.vision_prefix_tokens :]

    def image_features(self, inputs: Any) -> list[torch.Tensor]:
        """Per-patch embeddings in the joint space, (N, projection_dim) per image (see module docstring)."""
        states = self.patch_states(inputs["pixel_values"])
        vision = self.module("vision")
        feats = self.module("image_projection")(vision.post_layernorm(states))
        return list(feats)


@register_adapter
class SiglipAdapter(ClipAdapter):
    """`SiglipModel`: like CLIP, without a class token, with fixed-length (max_length) captions."""

    family: ClassVar[str] = "siglip"
    model_types: ClassVar[tuple[str, ...]] = ("siglip",)
    vision_prefix_tokens: ClassVar[int] = 0
    text_padding: ClassVar[bool | str] = "max_length"
    text_pooling: ClassVar[str] = "last"
    #: no image projection: SigLIP pools with an attention head and has no linear map into a joint space
    paths: ClassVar[dict[str, tuple[str, ...]]] = {k: v for k, v in ClipAdapter.paths.items() if k != "image_projection"}

    def image_features(self, inputs: Any) -> list[torch.Tensor]:
        """Per-patch post-layernorm states (N, hidden) per image: SigLIP has no projection to apply."""
        return list(self.patch_states(inputs["pixel_values"]))


# ---------------------------------------------------------------------------------------- tiny model


def _tiny_towers(tokenizer: Any, width: int, max_text: int, image_size: int,
                 overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Text and vision configs of a tiny dual encoder (2 layers × `width`, patch 8), with the test's
    `text_config` / `vision_config` overrides (taken out of `overrides`) merged in."""
    text = {**tiny_layers(width), "max_position_embeddings": max_text, **tiny_token_ids(tokenizer)}
    vision = {"image_size": image_size, "patch_size": 8, **tiny_layers(width)}
    return (merge_config(text, overrides.pop("text_config", None)),
            merge_config(vision, overrides.pop("vision_config", None)))


@register_tiny("clip")
def build_tiny_clip(
    seed: int = 0, attn_implementation: str = "sdpa", *, image_size: int = 64, tokenizer: Any = None,
    **overrides: Any
) -> tuple[Any, Any]:
    """Tiny random CLIP with an offline word tokenizer.

    Vision: 64×64 inputs, patch 8 → a class token + 8×8 patch tokens; 2 layers × width 32 in both encoders.
    (`build_real_clip` reuses this builder with a real checkpoint's geometry.)
    The image processor resizes the shortest side to 64 and center-crops 64×64, like real CLIP.

    Build `(model, processor)`: a `CLIPModel` (fp32, eval mode) and a `CLIPProcessor`.

    tokenizer: a tokenizer to use instead of the tiny word tokenizer (the real-geometry model passes its own).
    overrides: `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
               keys set top-level config fields.
    """
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    max_text = 32
    if tokenizer is None:
        tokenizer = word_tokenizer(TINY_WORDS, add_eos=True, padding_side="right", model_max_length=max_text)
    image_processor = CLIPImageProcessorPil(
        **merge_config(
            {"size": {"shortest_edge": image_size}, "crop_size": {"height": image_size, "width": image_size}},
            overrides.pop("image_processor", None),
        )
    )
    width = 32
    text_config, vision_config = _tiny_towers(tokenizer, width, max_text, image_size, overrides)
    config = CLIPConfig(
        text_config=text_config, vision_config=vision_config, projection_dim=width, **overrides
    )
    model = tiny_model(CLIPModel, config, seed, attn_implementation, None)
    return model.eval(), CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


@register_tiny("siglip")
def build_tiny_siglip(
    seed: int = 0, attn_implementation: str = "sdpa", *, image_size: int = 64, tokenizer: Any = None,
    **overrides: Any
) -> tuple[Any, Any]:
    """Tiny random SigLIP with an offline word tokenizer.

    Vision: 64×64 inputs (non-square images are stretched, as SigLIP's processor does), patch 8 → 8×8 patch
    tokens and no class token; 2 layers × width 32 in both encoders; captions padded to 16 tokens.

    Build `(model, processor)`: a `SiglipModel` (fp32, eval mode) and a `SiglipProcessor`.

    tokenizer: a tokenizer to use instead of the tiny word tokenizer (the real-geometry model passes its own).
    overrides: `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
               keys set top-level config fields.
    """
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    max_text = 16
    if tokenizer is None:
        tokenizer = word_tokenizer(
            TINY_WORDS, add_bos=False, add_eos=True, padding_side="right", model_max_length=max_text
        )
    image_processor = SiglipImageProcessorPil(
        **merge_config(
            {"size": {"height": image_size, "width": image_size}}, overrides.pop("image_processor", None)
        )
    )
    width = 32
    text_config, vision_config = _tiny_towers(tokenizer, width, max_text, image_size, overrides)
    config = SiglipConfig(text_config=text_config, vision_config=vision_config, **overrides)
    model = tiny_model(SiglipModel, config, seed, attn_implementation, None)
    return model.eval(), SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)


# ------------------------------------------------------------------------------------- real geometry

#: openai/clip-vit-base-patch32 (config.json): ViT-B/32 vision tower, 12-layer text encoder
CLIP_VIT_B_32 = RealCheckpoint(
    "openai/clip-vit-base-patch32",
    text=TowerShape(hidden_size=512, num_hidden_layers=12, num_attention_heads=8, intermediate_size=2048,
                    vocab_size=49408),
    vision=TowerShape(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
)
#: google/siglip-base-patch16-224 (config.json)
SIGLIP_BASE_16_224 = RealCheckpoint(
    "google/siglip-base-patch16-224",
    text=TowerShape(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    vocab_size=32000),
    vision=TowerShape(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
)


@register_real("clip", clip=CLIP_VIT_B_32)
def build_real_clip(seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any) -> tuple[Any, Any]:
    """CLIP with the geometry of `openai/clip-vit-base-patch32`, 2 layers × width 32 per encoder.

    Images: shortest edge resized to 224 (bicubic), center crop 224×224, OpenAI CLIP mean/std; patch 32 →
    a class token + 7×7 patch tokens. Captions: at most 77 tokens, `<|startoftext|>` … `<|endoftext|>`.
    """
    tokenizer = real_tokenizer({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}, None,
                               add_eos=True, padding_side="right", model_max_length=77)
    settings = real_overrides(
        {"image_size": 224, "vision_config": {"patch_size": 32}, "text_config": {"max_position_embeddings": 77}},
        overrides,
    )
    return build_tiny_clip(seed, attn_implementation, tokenizer=tokenizer, **settings)


@register_real("siglip", siglip=SIGLIP_BASE_16_224)
def build_real_siglip(seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any) -> tuple[Any, Any]:
    """SigLIP with the geometry of `google/siglip-base-patch16-224`, 2 layers × width 32 per encoder.

    Images: resized (stretched) to 224×224 (bicubic), mean/std 0.5; patch 16 → 14×14 = 196 patch tokens, no
    class token. Captions: padded to 64 tokens, eos `</s>`, no bos.
    """
    tokenizer = real_tokenizer({}, None, add_bos=False, add_eos=True, padding_side="right", model_max_length=64)
    settings = real_overrides(
        {"image_size": 224, "vision_config": {"patch_size": 16}, "text_config": {"max_position_embeddings": 64}},
        overrides,
    )
    return build_tiny_siglip(seed, attn_implementation, tokenizer=tokenizer, **settings)
