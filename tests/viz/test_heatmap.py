"""Tests for egokit.viz.heatmap: grids tile exactly, scores land on the right pixels, overlays are right."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from egokit.errors import InputError
from egokit.viz.heatmap import grid_boxes, overlay_heatmap, token_heatmap


def grey(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (128, 128, 128))


@pytest.mark.parametrize("rows, cols, width, height", [(8, 8, 64, 64), (3, 4, 50, 37), (5, 7, 7, 5), (2, 3, 100, 10)])
def test_grid_boxes_tile_the_image_exactly(rows, cols, width, height):
    boxes = grid_boxes(rows, cols, (width, height))
    assert boxes.shape == (rows * cols, 4) and boxes.dtype == np.int64
    cover = np.zeros((height, width), int)
    for x0, y0, x1, y1 in boxes:
        assert x1 > x0 and y1 > y0
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()


def test_grid_boxes_row_major_and_boundaries():
    boxes = grid_boxes(3, 4, (50, 37))  # W=50, H=37: neither divisible
    r, c = 1, 2
    assert boxes[r * 4 + c].tolist() == [c * 50 // 4, r * 37 // 3, (c + 1) * 50 // 4, (r + 1) * 37 // 3]
    assert boxes[0].tolist()[:2] == [0, 0] and boxes[-1].tolist()[2:] == [50, 37]


def test_grid_boxes_rejects_bad_arguments():
    with pytest.raises(InputError):
        grid_boxes(0, 4, (10, 10))
    with pytest.raises(InputError):
        grid_boxes(2, 2, (10, 0))
    with pytest.raises(InputError):
        grid_boxes(2, 2, (10,))
    with pytest.raises(InputError, match="does not fit"):
        grid_boxes(6, 2, (10, 5))


def test_token_heatmap_paints_boxes_and_averages_overlaps():
    heat = token_heatmap([1.0, 3.0], [(0, 0, 4, 4), (2, 2, 6, 6)], (8, 8))
    assert heat.shape == (8, 8) and heat.dtype == np.float64
    assert heat[0, 0] == 1.0 and heat[5, 5] == 3.0 and heat[3, 3] == 2.0
    assert np.isnan(heat[7, 7]) and np.isnan(heat[0, 5])


def test_token_heatmap_clips_skips_nan_and_accepts_floats():
    heat = token_heatmap([5.0, np.nan, 2.0], [(-3, -3, 2, 2), (0, 0, 8, 8), (6.0, 6.0, 20.0, 20.0)], (8, 8))
    assert heat[0, 0] == 5.0 and heat[1, 1] == 5.0 and np.isnan(heat[2, 2]) and heat[7, 7] == 2.0


def test_token_heatmap_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    boxes = grid_boxes(2, 2, (4, 4))
    heat = token_heatmap(torch.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True), torch.as_tensor(boxes), (4, 4))
    assert heat[0, 3] == 1.0 and heat[3, 0] == 2.0


@pytest.mark.parametrize(
    "scores, boxes, match",
    [
        ([1.0], [(0, 0, 1, 1), (1, 1, 2, 2)], "1 scores but 2 boxes"),
        ([1.0], [(0, 0, 1)], r"shape \(N, 4\)"),
        ([np.inf], [(0, 0, 1, 1)], "infinity"),
        ([1.0], [(0, 0, np.nan, 1)], "NaN"),
    ],
)
def test_token_heatmap_rejects_bad_input(scores, boxes, match):
    with pytest.raises(InputError, match=match):
        token_heatmap(scores, boxes, (4, 4))


@pytest.mark.parametrize("rows, cols, width, height", [(8, 8, 64, 64), (3, 4, 50, 37), (5, 7, 33, 29)])
@pytest.mark.parametrize("signed", [False, True])
def test_overlay_puts_each_cell_on_exactly_its_pixels(rows, cols, width, height, signed):
    boxes = grid_boxes(rows, cols, (width, height))
    base = np.asarray(grey(width, height))
    for r, c in [(0, 0), (rows - 1, cols - 1), (rows // 2, cols - 2), (1, 0)]:
        scores = np.zeros(rows * cols)
        scores[r * cols + c] = 1.0
        out = np.asarray(overlay_heatmap(grey(width, height), scores, boxes, alpha=0.6, signed=signed))
        changed = (out != base).any(axis=2)
        expected = np.zeros((height, width), bool)
        expected[r * height // rows:(r + 1) * height // rows, c * width // cols:(c + 1) * width // cols] = True
        assert np.array_equal(changed, expected), (r, c)


def test_overlay_hot_cell_is_bright_and_signed_colours_have_the_right_sign():
    boxes = grid_boxes(2, 2, (8, 8))
    hot = np.asarray(overlay_heatmap(grey(8, 8), [0, 1, 0, 0], boxes, alpha=1.0))
    assert hot[0, 6].sum() > 3 * 200  # inferno's top is pale yellow
    signed = np.asarray(overlay_heatmap(grey(8, 8), [0, 1, -1, 0], boxes, alpha=1.0, signed=True))
    red, blue = signed[0, 6], signed[6, 0]
    assert red[0] > red[2] + 50 and blue[2] > blue[0] + 50
    assert (signed[6, 6] == 128).all()  # zero stays transparent


def test_overlay_alpha_zero_and_constant_scores_leave_the_image_alone():
    boxes = grid_boxes(2, 2, (8, 8))
    base = np.asarray(grey(8, 8))
    assert np.array_equal(np.asarray(overlay_heatmap(grey(8, 8), [0, 1, 2, 3], boxes, alpha=0.0)), base)
    assert np.array_equal(np.asarray(overlay_heatmap(grey(8, 8), [2, 2, 2, 2], boxes)), base)


def test_overlay_uncovered_pixels_unchanged_and_vmin_vmax():
    base = np.asarray(grey(8, 8))
    out = np.asarray(overlay_heatmap(grey(8, 8), [1.0], [(0, 0, 4, 4)], vmin=0.0, vmax=1.0))
    assert (out[:4, :4] != base[:4, :4]).any() and np.array_equal(out[4:, :], base[4:, :])


def test_overlay_is_deterministic_and_rgb():
    boxes = grid_boxes(4, 4, (32, 32))
    scores = np.random.default_rng(0).random(16)
    a = overlay_heatmap(np.zeros((32, 32, 3), np.uint8), scores, boxes)
    b = overlay_heatmap(np.zeros((32, 32, 3), np.uint8), scores, boxes)
    assert a.mode == "RGB" and a.size == (32, 32) and a.tobytes() == b.tobytes()


def test_overlay_rejects_bad_alpha_and_cmap():
    boxes = grid_boxes(1, 1, (4, 4))
    with pytest.raises(InputError, match="alpha"):
        overlay_heatmap(grey(4, 4), [1.0], boxes, alpha=1.5)
    with pytest.raises(InputError, match="colour map"):
        overlay_heatmap(grey(4, 4), [1.0], boxes, cmap="no-such-map")
