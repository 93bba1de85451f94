"""Shared helpers for adapter tests: test images, and checks that token boxes match the pixels.

`coordinate_image(h, w)` encodes each pixel's own position in its colour (red = x, green = y), so after a
processor has resized, cropped, padded or tiled it, the mean colour of a patch says where in the original
image the patch came from. `assert_boxes_match_pixels` compares that with the boxes an adapter reports. Blue is 255 everywhere in the
image, so padding (black or the mean colour) can be told apart and left out of the means.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image


def coordinate_image(height: int, width: int) -> Image.Image:
    """RGB image whose red channel is x/width, green channel y/height (scaled to 0..255), blue 255."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([(x + 0.5) / width * 255, (y + 0.5) / height * 255, np.full_like(x, 255)], axis=-1)
    return Image.fromarray(np.round(rgb).astype(np.uint8))


def unnormalize(pixels: torch.Tensor, image_processor) -> torch.Tensor:
    """(3, H, W) normalised pixels back to 0..255."""
    mean = torch.tensor(image_processor.image_mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(image_processor.image_std, dtype=torch.float32)[:, None, None]
    return (pixels.float().cpu() * std + mean) * 255


def patch_centres(pixels: torch.Tensor, image_processor, patch: int, size: tuple[int, int]) -> torch.Tensor:
    """(rows*cols, 2) original-image (x, y) each patch's mean colour points at (raster order), counting
    only image pixels (blue near 255); NaN for a patch of padding only."""
    rgb = unnormalize(pixels, image_processor)
    h, w = size
    rows, cols = rgb.shape[1] // patch, rgb.shape[2] // patch
    cells = rgb[:, : rows * patch, : cols * patch].reshape(3, rows, patch, cols, patch)
    weight = ((cells[2] - 200) / 55).clamp(0, 1)
    total = weight.sum(dim=(1, 3))
    x = (cells[0] * weight).sum(dim=(1, 3)) / total / 255 * w
    y = (cells[1] * weight).sum(dim=(1, 3)) / total / 255 * h
    return torch.stack([x.flatten(), y.flatten()], dim=1)


def assert_boxes_match_pixels(boxes: torch.Tensor, centres: torch.Tensor, size: tuple[int, int]) -> None:
    """Each box's centre is where its pixels came from (tolerance: a quarter box plus 2 px)."""
    h, w = size
    box_centres = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1)
    tol = torch.stack(
        [(boxes[:, 2] - boxes[:, 0]) / 4 + 2 + w / 255, (boxes[:, 3] - boxes[:, 1]) / 4 + 2 + h / 255], 1
    )
    err = (box_centres - centres).abs()
    bad = (err > tol).any(dim=1) & ~centres.isnan().any(dim=1)
    assert not bad.any(), (
        f"{int(bad.sum())} boxes off, e.g. box {boxes[bad][0].tolist()} vs pixels {centres[bad][0].tolist()}"
    )


def assert_boxes_inside(boxes: torch.Tensor, size: tuple[int, int]) -> None:
    h, w = size
    assert boxes.shape[1] == 4
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w + 1e-4).all() and (boxes[:, 3] <= h + 1e-4).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def coverage(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool: pixels whose centre lies in at least one box."""
    h, w = size
    ys = torch.arange(h, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float32)[None, :] + 0.5
    covered = torch.zeros(h, w, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes.tolist():
        covered |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return covered


@pytest.fixture(scope="session")
def wide_image() -> Image.Image:
    return coordinate_image(48, 80)


@pytest.fixture(scope="session")
def tall_image() -> Image.Image:
    return coordinate_image(300, 260)


@pytest.fixture(scope="session")
def boxcheck():
    """The helpers above, for test modules (conftest modules are not imported by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        coordinate_image=coordinate_image,
        patch_centres=patch_centres,
        assert_boxes_match_pixels=assert_boxes_match_pixels,
        assert_boxes_inside=assert_boxes_inside,
        coverage=coverage,
        unnormalize=unnormalize,
    )
