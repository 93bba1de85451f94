"""PaliGemma (1 and 2): a SigLIP grid in front of a Gemma decoder, image tokens first.

Layout, from the config and the processor's outputs:
- the image processor resizes every image to the vision tower's square input (no crop, no pad);
- the vision tower gives `(image_size / patch_size)²` patch tokens, projected one-to-one into the language
  model (`text_config.num_image_tokens`), raster order, so token (r, c) of the `n × n` grid covers the
  (r, c) cell of an even n × n split of the original image;
- the prompt starts with the image tokens of every image (`<image>`·n² per image), then bos, the text and a
  newline; the image tokens and the text prefix attend to each other both ways (`token_type_ids` 0), the
  generated suffix causally.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from egokit.errors import InputError
from egokit.models.adapters.base import (
    GENERATES_TEXT,
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
from egokit.models.text import TINY_WORDS, word_tokenizer


@register_adapter
class PaliGemmaAdapter(VLMAdapter):
    """Adapter for `PaliGemmaForConditionalGeneration`."""

    family = "paligemma"
    model_types = ("paligemma",)
    #: no SOFT_VISUAL_TOKENS: its images must come first, before any text, in a bidirectional prefix, so
    #: visual tokens placed between text pieces are read causally and the model cannot use them
    capabilities = frozenset({GENERATES_TEXT})
    paths = vlm_paths(
        vision="vision_tower", vision_blocks=("encoder.layers", "vision_model.encoder.layers"),
        projector="multi_modal_projector", language="language_model")

    # -- structure -------------------------------------------------------------------------------------

    def attention_modules(self, part: str | None = None) -> list[nn.Module]:
        part = part or self.default_part
        if part == "language":
            return [layer.self_attn for layer in self.language_model.layers]
        if part == "vision":
            tower = self.vision_tower
            encoder = getattr(tower, "vision_model", tower).encoder
            return [layer.self_attn for layer in encoder.layers]
        raise InputError(f"{self.family} has no {part!r} part; choose one of {', '.join(self.parts)}")

    @property
    def grid_side(self) -> int:
        vision = self.model.config.vision_config
        return int(vision.image_size // vision.patch_size)

    # -- inputs ----------------------------------------------------------------------------------------
    def prompt(self, question: str, n_images: int = 1) -> str:
        """Image tokens, then the question; the processor adds bos after the images and a closing newline.

        PaliGemma has no chat template; task prefixes such as `answer en` or `caption en` are part of `question`.
        """
        return self.plain_prompt(question, n_images)

    def processor_call(self, groups: list[list[Any]], texts: list[str], **kwargs: Any) -> Any:
        # The stock processor builds training labels with np.array(tensor), which warns under NumPy 2.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", category=DeprecationWarning, message=r"__array__ implementation"
            )
            return super().processor_call(groups, texts, **kwargs)

    def model_inputs(self, inputs: Any) -> dict[str, Any]:
        out = super().model_inputs(inputs)
        out.pop("labels", None)  # the processor adds training labels; inference needs none
        return out

    # -- layout ----------------------------------------------------------------------------------------
    def _images_in_row(self, inputs: Any, row: int) -> int:
        count = int((inputs["input_ids"][row] == self.image_token_id).sum())
        per_image = self.grid_side**2
        if count % per_image:
            raise InputError(
                f"batch row {row} holds {count} image tokens, not a multiple of the {per_image} tokens per image "
                "that the vision config gives"
            )
        return count // per_image

    def visual_layout(self, inputs: Any, batch_index: int = 0) -> list[ImageTokens]:
        count = self._images_in_row(inputs, batch_index)
        if count == 0:
            return []
        first = sum(self._images_in_row(inputs, row) for row in range(batch_index))
        side = self.grid_side
        size = int(self.config.vision_config.image_size)
        sizes, coords = self.sizes_for(inputs, first, count, [(size, size)] * count)
        positions = torch.nonzero(inputs["input_ids"][batch_index] == self.image_token_id).flatten().cpu()
        per_image = side * side
        layout = []
        for k, (height, width) in enumerate(sizes):
            layout.append(
                ImageTokens(
                    positions=positions[k * per_image : (k + 1) * per_image],
                    boxes=grid_boxes(side, side, height / side, width / side),
                    feature_index=torch.arange(per_image),
                    grid=(side, side),
                    image_size=(int(height), int(width)),
                    extra={
                        "image_index": first + k,
                        "coords": coords,
                        "view": (0.0, 0.0, float(width), float(height)),
                        "resized_size": (size, size),
                    },
                )
            )
        return layout

    def image_features(self, inputs: Any) -> list[torch.Tensor]:
        pixel_values = inputs.get("pixel_values")
        if pixel_values is None:
            return []
        return feature_list(self.base.get_image_features(pixel_values=pixel_values))


# ---------------------------------------------------------------------------------------- tiny model


@register_tiny("paligemma")
def build_tiny_paligemma(
    seed: int = 0, attn_implementation: str = "sdpa", *, image_size: int = 64, tokenizer: Any = None,
    **overrides: Any
) -> tuple[Any, Any]:
    """Tiny random PaliGemma with an offline tokenizer.

    SigLIP-style vision tower on 64×64 inputs with patch 8: every image is 8×8 = 64 image tokens, placed first in
    the prompt. The PaliGemma processor adds its 1152 `<locXXXX>`/`<segXXX>` tokens to the tokenizer; the model's
    vocabulary covers them, so every id the tokenizer can produce has an embedding.

    Build `(model, processor)`: Gemma text model 2×32 (head_dim 16), vision 2×32, fp32, eval mode.

    image_size: the vision tower's square input (patch 8), so `(image_size/8)²` image tokens per image.
    tokenizer:  a tokenizer (with an `image_token`, adding no bos) instead of the tiny word tokenizer.
    overrides:  `text_config` / `vision_config` / `image_processor` dicts merged into the defaults; other
                keys set top-level config fields.
    """
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )

    patch = int((overrides.get("vision_config") or {}).get("patch_size", 8))
    # No bos from the tokenizer: the PaliGemma processor writes bos itself, after the image tokens.
    if tokenizer is None:
        tokenizer = word_tokenizer(
            TINY_WORDS, extra_special_tokens={"image_token": "<image>"}, add_bos=False, model_max_length=1024
        )
    image_processor = SiglipImageProcessorPil(
        **merge_config(
            {
                "size": {"height": image_size, "width": image_size},
                "image_seq_length": (image_size // patch) ** 2,
            },
            overrides.pop("image_processor", None),
        )
    )
    processor = PaliGemmaProcessor(image_processor, tokenizer)  # adds the location/segmentation tokens

    width, heads = 32, 2
    text_config = merge_config(
        {
            "model_type": "gemma",
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 1,
            "head_dim": width // heads,
            "max_position_embeddings": 512,
            **tiny_token_ids(tokenizer),
        },
        overrides.pop("text_config", None),
    )
    vision_config = merge_config(
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
        vocab_size=len(tokenizer),
        projection_dim=text_config["hidden_size"],
        hidden_size=text_config["hidden_size"],
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    model = tiny_model(PaliGemmaForConditionalGeneration, config, seed, attn_implementation, tokenizer)
    return model.eval(), processor


# ------------------------------------------------------------------------------------- real geometry

#: google/paligemma-3b-pt-224 (config.json): SigLIP-so400m/14 tower at 224, Gemma-2B language model
PALIGEMMA_3B_224 = RealCheckpoint(
    "google/paligemma-3b-pt-224",
    text=TowerShape(hidden_size=2048, num_hidden_layers=18, num_attention_heads=8, intermediate_size=16384,
                    num_key_value_heads=1, head_dim=256, vocab_size=257216),
    vision=TowerShape(hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304),
)


@register_real("paligemma", paligemma=PALIGEMMA_3B_224)
def build_real_paligemma(seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any) -> tuple[Any, Any]:
    """PaliGemma with the geometry of `google/paligemma-3b-pt-224`, 2 layers per stack.

    Images: resized (stretched) to 224×224 (bicubic, mean/std 0.5), patch 14 → 16×16 = 256 `<image>` tokens per
    image, first in the prompt, then `<bos>`, the text and a newline. No chat template (a pretrained checkpoint).
    """
    tokenizer = real_tokenizer({"bos_token": "<bos>", "eos_token": "<eos>", "image_token": "<image>"}, None,
                               add_bos=False, model_max_length=8192)
    heads = REAL_TEXT_CUT["num_attention_heads"]
    settings = real_overrides(
        {
            "image_size": 224,
            "image_processor": {"image_seq_length": (224 // 14) ** 2},
            "vision_config": {**REAL_VISION_CUT, "patch_size": 14},
            "text_config": {**REAL_TEXT_CUT, "num_key_value_heads": 1,
                            "head_dim": REAL_TEXT_CUT["hidden_size"] // heads, "max_position_embeddings": 8192},
        },
        overrides,
    )
    return build_tiny_paligemma(seed, attn_implementation, tokenizer=tokenizer, **settings)
