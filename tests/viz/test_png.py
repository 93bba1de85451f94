"""Tests for egokit.viz.png: PNG bytes from images, arrays and figures; the ReprPNG mixin."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from egokit.errors import InputError
from egokit.viz.png import ReprPNG, to_png_bytes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decode(data: bytes) -> Image.Image:
    assert data.startswith(PNG_MAGIC)
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_pil_and_arrays_round_trip():
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(decode(to_png_bytes(Image.fromarray(arr)))), arr)
    assert np.array_equal(np.asarray(decode(to_png_bytes(arr))), arr)
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert decode(to_png_bytes(rgba)).mode == "RGBA"
    assert decode(to_png_bytes(np.ones((3, 3), np.float32))).size == (3, 3)
    assert decode(to_png_bytes(Image.new("CMYK", (2, 2)))).mode == "RGB"


def test_figure_is_deterministic_and_left_open():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    try:
        a, b = to_png_bytes(fig), to_png_bytes(fig)
        assert a == b and decode(a).width > 50
        assert plt.fignum_exists(fig.number)
    finally:
        plt.close(fig)


def test_unsupported_type():
    with pytest.raises(InputError, match="cannot make a PNG"):
        to_png_bytes(42)


@dataclass
class Result(ReprPNG):
    value: int

    def to_image(self) -> Image.Image:
        return Image.new("RGB", (4, 3), (self.value, 0, 0))


def test_repr_png_mixin():
    data = Result(200)._repr_png_()
    img = decode(data)
    assert img.size == (4, 3) and img.getpixel((0, 0))[0] == 200
    assert to_png_bytes(Result(200)) == data


def test_repr_png_without_to_image():
    class Bare(ReprPNG):
        pass

    with pytest.raises(NotImplementedError, match="to_image"):
        Bare()._repr_png_()
