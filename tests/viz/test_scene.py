"""Tests for egokit.viz.scene: upscaling, masks and boxes on the right pixels, captions, galleries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from egokit.errors import InputError
from egokit.viz.scene import PALETTE, draw_caption, draw_scene, gallery, object_label, upscale


def white(width: int = 64, height: int = 64) -> np.ndarray:
    return np.full((height, width, 3), 255, np.uint8)


@dataclass
class Obj:
    shape: str
    color: str
    pattern: str
    size: str
    box: tuple[int, int, int, int]
    mask: np.ndarray


def square_obj(x0: int, y0: int, side: int, shape: str = "square") -> Obj:
    mask = np.zeros((64, 64), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return Obj(shape, "red", "solid", "small", (x0, y0, x0 + side, y0 + side), mask)


def test_upscale_small_images_by_whole_factor():
    img, factor = upscale(white(64, 64))
    assert factor == 4 and img.size == (256, 256)
    big, factor = upscale(white(300, 200))
    assert factor == 1 and big.size == (300, 200)


def test_draw_scene_box_lands_on_the_right_pixels():
    out = np.asarray(draw_scene(white(), boxes=[(8, 16, 24, 40)]))
    assert out.shape == (256, 256, 3)
    colour = np.array(PALETTE[0])
    assert (out[16 * 4, 8 * 4:24 * 4] == colour).all()            # top edge
    assert (out[40 * 4 - 1, 8 * 4:24 * 4] == colour).all()        # bottom edge (end exclusive)
    assert (out[16 * 4:40 * 4, 8 * 4] == colour).all()            # left edge
    assert (out[100, 100] == 255).all() and (out[30 * 4, 16 * 4] == 255).all()  # outside, inside


def test_draw_scene_mask_tint_and_outline_stay_inside_the_mask():
    obj = square_obj(10, 10, 12)
    out = np.asarray(draw_scene(white(), masks=[obj.mask]))
    big = np.repeat(np.repeat(obj.mask, 4, 0), 4, 1)
    changed = (out != 255).any(axis=2)
    assert np.array_equal(changed, big)
    assert (out[40, 40] == PALETTE[0]).all()       # outline at the mask's corner
    centre = out[16 * 4, 16 * 4]
    assert not (centre == PALETTE[0]).all() and (centre != 255).any()  # tinted, not filled


def test_draw_scene_from_objects_with_labels_is_deterministic():
    objs = [square_obj(4, 20, 10), square_obj(40, 30, 16, "circle")]
    a = draw_scene(white(), objs)
    b = draw_scene(white(), objs)
    assert a.tobytes() == b.tobytes()
    plain = draw_scene(white(), objs, labels=["", ""])
    assert a.tobytes() != plain.tobytes()  # the labels were drawn
    assert object_label(objs[1]) == "small red solid circle"


def test_draw_scene_rejects_mismatched_inputs():
    with pytest.raises(InputError, match="labels"):
        draw_scene(white(), boxes=[(0, 0, 4, 4)], labels=["a", "b"])
    with pytest.raises(InputError, match="mask 0"):
        draw_scene(white(), masks=[np.zeros((10, 10), bool)])


def test_draw_caption_flags_a_word_in_red():
    plain = np.asarray(draw_caption(white(), "a big red circle"))
    flagged = np.asarray(draw_caption(white(), "a big red circle", highlight=[2]))
    assert plain.shape == flagged.shape and plain.shape[0] > 256
    reddish = (flagged[256:, :, 0] > 150) & (flagged[256:, :, 1] < 100) & (flagged[256:, :, 2] < 100)
    assert reddish.sum() > 20 and not ((plain[256:, :, 0] > 150) & (plain[256:, :, 1] < 100)).any()
    with pytest.raises(InputError, match="outside"):
        draw_caption(white(), "two words", highlight=[5])


def test_gallery_grid_and_captions():
    imgs = [white(64, 64), np.zeros((32, 48, 3), np.uint8), Image.new("RGB", (600, 300), (0, 0, 255))]
    titles = ["one", "a much longer caption that has to wrap onto more than one line under its tile", "three"]
    sheet = gallery(imgs, titles, cols=2, tile=128)
    assert sheet.mode == "RGB"
    assert sheet.width == 2 * (128 + 8) + 8
    no_titles = gallery(imgs, cols=2, tile=128)
    assert sheet.height > no_titles.height
    assert gallery(imgs, titles, cols=2, tile=128).tobytes() == sheet.tobytes()
    arr = np.asarray(sheet)
    assert (arr[8 + 32, 136 + 8 + 64] == 0).all()  # the black 48×32 image is centred in tile 2


def test_gallery_rejects_bad_arguments():
    with pytest.raises(InputError):
        gallery([])
    with pytest.raises(InputError, match="titles"):
        gallery([white()], ["a", "b"])
    with pytest.raises(InputError, match="cols"):
        gallery([white()], cols=0)
