"""Pixel geometry shared by adapters: where a processed image's pixels come from in the original image.

Image processors pad, resize and crop before the vision tower sees a picture. To give each visual token a
box in the *original* image, adapters compose the same steps backwards. `PixelMap` is the affine map
`x_orig = x_proc * sx + ox`, `y_orig = y_proc * sy + oy` from a processed view to the original image.

`processor_pixel_map` replays the common pipeline of transformers' image processors: optional pad to
square (LLaVA's `do_pad`), resize (`shortest_edge`, `shortest_edge` + `longest_edge`, `height`/`width`,
`max_height`/`max_width`), then center crop. The arithmetic is that of the PIL backend; the torchvision
backend rounds the crop offset instead of flooring it, so boxes may be off by at most one resized pixel.

Original image sizes: processors do not return them, so `prepare()` stores them in the prepared inputs
under `ORIGINAL_SIZES_KEY` (a (n_images, 2) long tensor of (height, width), images in order), and the
adapters' `model_inputs()` removes the key before the model call. Without the key, boxes are given in the
coordinates of the processed image and `ImageTokens.extra["coords"]` says `"processed"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

ORIGINAL_SIZES_KEY = "egokit_original_sizes"


@dataclass(frozen=True)
class PixelMap:
    """Affine map from processed-view pixels to original-image pixels (per axis: scale then offset)."""

    sx: float
    ox: float
    sy: float
    oy: float
    original_size: tuple[int, int]  # (height, width) of the original image

    @staticmethod
    def identity(size: tuple[int, int]) -> PixelMap:
        return PixelMap(1.0, 0.0, 1.0, 0.0, (int(size[0]), int(size[1])))

    def then_from(self, inner: PixelMap) -> PixelMap:
        """The map of a view whose pixels map into *this* map's view through `inner` (inner first)."""
        return PixelMap(
            sx=inner.sx * self.sx,
            ox=inner.ox * self.sx + self.ox,
            sy=inner.sy * self.sy,
            oy=inner.oy * self.sy + self.oy,
            original_size=self.original_size,
        )

    def boxes(self, boxes: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """Map (N, 4) boxes (x0, y0, x1, y1) to original pixels, clipped to the image when `clip`."""
        b = boxes.to(torch.float32)
        out = torch.stack(
            [
                b[:, 0] * self.sx + self.ox,
                b[:, 1] * self.sy + self.oy,
                b[:, 2] * self.sx + self.ox,
                b[:, 3] * self.sy + self.oy,
            ],
            dim=1,
        )
        if clip:
            h, w = self.original_size
            out[:, 0::2] = out[:, 0::2].clamp(0, w)
            out[:, 1::2] = out[:, 1::2].clamp(0, h)
        return out


def grid_boxes(
    rows: int, cols: int, cell_h: float, cell_w: float, top: float = 0.0, left: float = 0.0
) -> torch.Tensor:
    """(rows*cols, 4) boxes of a regular grid in raster order, cell (r, c) = [left + c*cell_w, top + r*cell_h, ...)."""
    r = torch.arange(rows, dtype=torch.float32).repeat_interleave(cols)
    c = torch.arange(cols, dtype=torch.float32).repeat(rows)
    x0 = left + c * cell_w
    y0 = top + r * cell_h
    return torch.stack([x0, y0, x0 + cell_w, y0 + cell_h], dim=1)


def image_size_of(image: Any) -> tuple[int, int]:
    """(height, width) of a PIL image, a numpy array or a torch tensor (HWC or CHW with 1/3/4 channels)."""
    if hasattr(image, "size") and not callable(image.size) and hasattr(image, "mode"):  # PIL
        w, h = image.size
        return int(h), int(w)
    shape = tuple(image.shape) if isinstance(image, (np.ndarray, torch.Tensor)) else None
    if shape is None:
        raise TypeError(f"cannot tell the size of a {type(image).__name__}: pass a PIL image or an array")
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    if len(shape) == 3:
        if shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
            return int(shape[1]), int(shape[2])
        return int(shape[0]), int(shape[1])
    raise TypeError(f"an image array must have 2 or 3 dimensions, got shape {shape}")


def _get(cfg: Any, key: str) -> Any:
    if cfg is None:
        return None
    if isinstance(cfg, Mapping):
        return cfg.get(key)
    return getattr(cfg, key, None)


def resized_size(size: tuple[int, int], target: Any) -> tuple[int, int]:
    """(height, width) after an image processor's `resize` with size dict `target` (PIL backend rules)."""
    h, w = size
    shortest, longest = _get(target, "shortest_edge"), _get(target, "longest_edge")
    if shortest and longest:
        from transformers.image_transforms import get_size_with_aspect_ratio

        return tuple(get_size_with_aspect_ratio((h, w), shortest, longest))  # type: ignore[return-value]
    if shortest:
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = int(shortest), int(shortest * long / short)
        return (new_long, new_short) if w <= h else (new_short, new_long)
    max_h, max_w = _get(target, "max_height"), _get(target, "max_width")
    if max_h and max_w:
        scale = min(max_h / h, max_w / w)
        return int(h * scale), int(w * scale)
    th, tw = _get(target, "height"), _get(target, "width")
    if th and tw:
        return int(th), int(tw)
    if longest:
        scale = longest / max(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))
    raise ValueError(f"unsupported resize size {target!r}")


def center_crop_offset(size: int, crop: int) -> int:
    """Offset of a center crop of length `crop` in a length `size` (negative: the image is padded first)."""
    return (size - crop) // 2


def processor_pixel_map(
    image_processor: Any, image_size: tuple[int, int]
) -> tuple[PixelMap, tuple[int, int]]:
    """Map from the processed image to the original one for pad-to-square / resize / center-crop processors.

    Returns the map and the processed (height, width). Works for CLIP, SigLIP and LLaVA image processors
    (and any PIL-backend processor using the same three steps).
    """
    h, w = int(image_size[0]), int(image_size[1])
    pmap = PixelMap.identity((h, w))
    cur_h, cur_w = h, w
    if getattr(image_processor, "do_pad", False) and hasattr(image_processor, "pad_to_square"):
        side = max(h, w)
        # pad_to_square puts the image at offset (side - short) // 2 along the short axis
        pmap = pmap.then_from(PixelMap(1.0, -((side - w) // 2), 1.0, -((side - h) // 2), (h, w)))
        cur_h = cur_w = side
    if getattr(image_processor, "do_resize", False) and getattr(image_processor, "size", None):
        new_h, new_w = resized_size((cur_h, cur_w), image_processor.size)
        pmap = pmap.then_from(PixelMap(cur_w / new_w, 0.0, cur_h / new_h, 0.0, (h, w)))
        cur_h, cur_w = new_h, new_w
    crop = getattr(image_processor, "crop_size", None)
    if getattr(image_processor, "do_center_crop", False) and crop:
        ch, cw = int(_get(crop, "height")), int(_get(crop, "width"))
        oy, ox = center_crop_offset(cur_h, ch), center_crop_offset(cur_w, cw)
        pmap = pmap.then_from(PixelMap(1.0, float(ox), 1.0, float(oy), (h, w)))
        cur_h, cur_w = ch, cw
    return pmap, (cur_h, cur_w)


def visible_box(pmap: PixelMap, processed_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of the original image that the processed view shows (x0, y0, x1, y1), clipped."""
    ph, pw = processed_size
    box = pmap.boxes(torch.tensor([[0.0, 0.0, float(pw), float(ph)]]))[0]
    return tuple(float(v) for v in box)  # type: ignore[return-value]


def original_sizes(inputs: Mapping[str, Any]) -> list[tuple[int, int]] | None:
    """The original (height, width) per image stored by `prepare()`, or None."""
    sizes = inputs.get(ORIGINAL_SIZES_KEY) if isinstance(inputs, Mapping) else None
    if sizes is None:
        return None
    return [(int(a), int(b)) for a, b in torch.as_tensor(sizes).tolist()]


__all__ = [
    "ORIGINAL_SIZES_KEY",
    "PixelMap",
    "center_crop_offset",
    "grid_boxes",
    "image_size_of",
    "original_sizes",
    "processor_pixel_map",
    "resized_size",
    "visible_box",
]
