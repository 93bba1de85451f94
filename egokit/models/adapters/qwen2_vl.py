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

from egokit.errors import InputError
from egokit.models.adapters.base import GENERATES_TEXT, SOFT_VISUAL_TOKENS, ImageTokens, register_adapter
from egokit.models.adapters.common import feature_list
from egokit.models.adapters.vlm import VLMAdapter
from egokit.models.geometry import grid_boxes


@register_adapter
class Qwen2VLAdapter(VLMAdapter):
    """Adapter for `Qwen2VLForConditionalGeneration` and `Qwen2_5_VLForConditionalGeneration`."""

    family = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    parts = ("language", "vision")
    default_part = "language"

    capabilities = frozenset({GENERATES_TEXT, SOFT_VISUAL_TOKENS})
    rope = "mrope"
    #: the projector is the patch merger: its output rows are the image tokens' input embeddings
    paths = {
        "vision": ("model.visual", "visual"),
        "vision_blocks": ("model.visual.blocks", "visual.blocks"),
        "projector": ("model.visual.merger", "visual.merger"),
        "language": ("model.language_model", "language_model"),
        "language_blocks": ("model.language_model.layers", "language_model.layers"),
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
