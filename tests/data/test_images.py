"""Tests for egokit.data.images: every accepted input, every conversion, every refusal, and a fuzz test."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from egokit.data import images
from egokit.data.images import load_image, load_images
from egokit.errors import EgokitError, ImageError

RED = (255, 0, 0)


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def pattern(w: int = 16, h: int = 12) -> Image.Image:
    """A small RGB image with distinct rows and columns (so flips and rotations show)."""
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 2 * 255], -1)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def assert_rgb(img: Image.Image, size: tuple[int, int] | None = None) -> None:
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    if size is not None:
        assert img.size == size


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height but carries almost no pixel data."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------------- sources


def test_path_str_and_pathlib(tmp_path):
    p = tmp_path / "a.png"
    pattern().save(p)
    for src in (p, str(p)):
        img = load_image(src)
        assert_rgb(img, (16, 12))
        assert np.array_equal(np.asarray(img), np.asarray(pattern()))


def test_bytes_bytearray_memoryview():
    data = encode(pattern())
    for src in (data, bytearray(data), memoryview(data)):
        assert_rgb(load_image(src), (16, 12))


def test_file_objects(tmp_path):
    data = encode(pattern(), "JPEG", quality=95)
    assert_rgb(load_image(io.BytesIO(data)), (16, 12))
    p = tmp_path / "a.jpg"
    p.write_bytes(data)
    with open(p, "rb") as fh:
        assert_rgb(load_image(fh), (16, 12))

    class Stream:  # read() only, not seekable
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

        def read(self, n: int = -1) -> bytes:
            out, self.payload = self.payload, b""
            return out

    assert_rgb(load_image(Stream(data)), (16, 12))


def test_pil_image_is_copied_not_aliased():
    src = pattern()
    out = load_image(src)
    assert out is not src
    out.putpixel((0, 0), (1, 2, 3))
    assert src.getpixel((0, 0)) != (1, 2, 3)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_formats(fmt):
    assert_rgb(load_image(encode(pattern(), fmt)), (16, 12))


def test_exif_orientation_is_applied():
    img = pattern(8, 4)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    out = load_image(encode(img, "PNG", exif=exif))
    assert out.size == (4, 8)


# ------------------------------------------------------------------------------------------- modes


def test_rgba_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((1, 1), (255, 0, 0, 255))
    rgba.putpixel((2, 2), (0, 0, 0, 128))
    out = np.asarray(load_image(encode(rgba)))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[1, 1]) == RED
    assert all(abs(int(v) - 127) <= 1 for v in out[2, 2])


def test_la_composited_on_white():
    la = Image.new("LA", (3, 3), (0, 0))
    la.putpixel((0, 0), (0, 255))
    out = np.asarray(load_image(la))
    assert tuple(out[0, 0]) == (0, 0, 0) and tuple(out[1, 1]) == (255, 255, 255)


def test_palette_with_and_without_transparency():
    p = Image.new("P", (4, 4), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    plain = np.asarray(load_image(encode(p)))
    assert tuple(plain[0, 0]) == (0, 0, 0) and tuple(plain[1, 1]) == RED
    clear = np.asarray(load_image(encode(p, transparency=0)))
    assert tuple(clear[0, 0]) == (255, 255, 255) and tuple(clear[1, 1]) == RED
    gif = np.asarray(load_image(encode(p, "GIF", transparency=0)))
    assert tuple(gif[0, 0]) == (255, 255, 255) and tuple(gif[1, 1]) == RED


def test_rgb_png_with_transparent_colour_key():
    img = Image.new("RGB", (2, 2), (0, 0, 0))
    img.putpixel((1, 1), RED)
    out = np.asarray(load_image(encode(img, transparency=(0, 0, 0))))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == RED


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    out = np.asarray(load_image(encode(cmyk, "JPEG", quality=100)))
    r, g, b = (int(v) for v in out[4, 4])
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_png_is_scaled():
    arr = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    out = np.asarray(load_image(encode(Image.fromarray(arr))))
    assert out[0, :, 0].tolist() == [0, 100, 255]


def test_int32_and_float_modes():
    small = Image.fromarray(np.array([[0, 200]], dtype=np.int32), mode="I")
    assert np.asarray(load_image(small))[0, :, 0].tolist() == [0, 200]
    wide = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), mode="I")
    assert np.asarray(load_image(wide))[0, :, 0].tolist() == [0, 255]
    unit = Image.fromarray(np.array([[0.0, 1.0]], dtype=np.float32), mode="F")
    assert np.asarray(load_image(unit))[0, :, 0].tolist() == [0, 255]
    byte = Image.fromarray(np.array([[0.0, 128.0, 300.0]], dtype=np.float32), mode="F")
    assert np.asarray(load_image(byte))[0, :, 0].tolist() == [0, 128, 255]
    tiff = encode(Image.fromarray(np.array([[0.0, 0.5]], dtype=np.float32), mode="F"), "TIFF")
    assert np.asarray(load_image(tiff))[0, :, 0].tolist() == [0, 128]


def test_float_image_with_nan_is_refused():
    img = Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32), mode="F")
    with pytest.raises(ImageError, match="NaN"):
        load_image(img)


def test_grey_and_bilevel():
    grey = np.asarray(load_image(Image.new("L", (2, 2), 77)))
    assert grey.shape == (2, 2, 3) and (grey == 77).all()
    bw = Image.new("1", (2, 2), 0)
    bw.putpixel((0, 0), 1)
    out = np.asarray(load_image(encode(bw)))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (0, 0, 0)


def test_multiframe_gif_and_tiff_give_first_frame():
    frames = [Image.new("RGB", (4, 4), c) for c in (RED, (0, 0, 255), (0, 255, 0))]
    for fmt in ("GIF", "TIFF"):
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
        with Image.open(io.BytesIO(data)) as check:
            assert getattr(check, "n_frames", 1) == 3
        assert tuple(np.asarray(load_image(data))[0, 0]) == RED


# ------------------------------------------------------------------------------------------- arrays


@pytest.mark.parametrize(
    "arr, expected",
    [
        (np.full((3, 5), 9, np.uint8), (9, 9, 9)),
        (np.full((3, 5, 1), 9, np.uint8), (9, 9, 9)),
        (np.full((3, 5, 3), [1, 2, 3], np.uint8), (1, 2, 3)),
        (np.full((3, 5, 4), [255, 0, 0, 255], np.uint8), RED),
        (np.full((3, 5, 4), [255, 0, 0, 0], np.uint8), (255, 255, 255)),
        (np.full((3, 5), 257 * 200, np.uint16), (200, 200, 200)),
        (np.ones((3, 5), bool), (255, 255, 255)),
        (np.full((3, 5, 3), [0.0, 0.5, 1.0], np.float32), (0, 128, 255)),
        (np.full((3, 5, 3), [0.0, 0.5, 1.0], np.float64), (0, 128, 255)),
        (np.full((3, 5), 42, np.int64), (42, 42, 42)),
    ],
)
def test_arrays(arr, expected):
    img = load_image(arr)
    assert_rgb(img, (5, 3))
    assert tuple(np.asarray(img)[1, 1]) == expected


def test_non_contiguous_array():
    arr = np.asarray(pattern())[:, ::-1]
    assert np.array_equal(np.asarray(load_image(arr)), arr)


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((4, 4, 2), np.uint8), "not an image"),
        (np.zeros((2, 2, 2, 2), np.uint8), "not an image"),
        (np.zeros(16, np.uint8), "not an image"),
        (np.zeros((3, 16, 16), np.uint8), "channels-first"),
        (np.zeros((0, 4, 3), np.uint8), "zero size"),
        (np.zeros((4, 0), np.uint8), "zero size"),
        (np.zeros((4, 4), np.complex64), "dtype"),
        (np.zeros((4, 4), object), "dtype"),
        (np.zeros((4, 4), "U1"), "dtype"),
        (np.full((4, 4), 256, np.int64), "outside 0..255"),
        (np.full((4, 4), -1, np.int16), "outside 0..255"),
        (np.full((4, 4), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((4, 4), -0.1, np.float64), r"\[0, 1\]"),
        (np.full((4, 4), np.nan, np.float32), "NaN"),
        (np.full((4, 4), np.inf, np.float64), "NaN or infinity"),
    ],
)
def test_bad_arrays(arr, match):
    with pytest.raises(ImageError, match=match):
        load_image(arr)


# ------------------------------------------------------------------------------------------- refusals


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found") as e:
        load_image(tmp_path / "nope.png")
    assert "nope.png" in str(e.value)


def test_directory(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_permission_denied(tmp_path, monkeypatch):
    p = tmp_path / "secret.png"
    pattern().save(p)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "open", refuse, raising=False)
    with pytest.raises(ImageError, match="permission denied"):
        load_image(p)


def test_text_file(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("these are notes, not pixels\n")
    with pytest.raises(ImageError, match="text file"):
        load_image(p)


def test_binary_junk_is_not_an_image():
    with pytest.raises(ImageError, match="not an image format"):
        load_image(bytes(range(256)) * 4)


def test_empty_file_and_bytes(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(p)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"])
def test_truncated_files(tmp_path, fmt):
    data = encode(pattern(64, 64), fmt)
    p = tmp_path / f"cut.{fmt.lower()}"
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match="truncated or corrupt|not an image"):
        load_image(p)


def test_corrupt_png_data(tmp_path):
    data = bytearray(encode(pattern(64, 64)))
    start = data.index(b"IDAT") + 8
    data[start:start + 40] = b"\xff" * 40
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(bytes(data))


def test_zero_size_pil_image():
    with pytest.raises(ImageError, match="zero size"):
        load_image(Image.new("RGB", (0, 5)))


def test_pixel_limit():
    img = Image.new("RGB", (100, 50))
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(img, max_pixels=4999)
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(encode(img), max_pixels=4999)
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(np.zeros((50, 100), np.uint8), max_pixels=4999)
    assert_rgb(load_image(img, max_pixels=5000), (100, 50))


def test_pixel_limit_checked_before_decoding():
    # 8000×8000 = 64 M pixels: over the default limit of 50 M, under PIL's own bomb limit.
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(png_with_header(8000, 8000))


def test_decompression_bomb_becomes_image_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="too large"):
            load_image(png_with_header(100_000, 100_000), max_pixels=10**11)


def test_pil_bomb_warning_does_not_escape(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("RGB", (40, 40)))  # 1600 px: PIL would warn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_rgb(load_image(data), (40, 40))
        with pytest.raises(ImageError, match="more than the limit"):
            load_image(data, max_pixels=1500)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("bad", [123, None, 4.5, ["a.png"], {"path": "a.png"}])
def test_unsupported_types(bad):
    with pytest.raises(ImageError, match="cannot load an image from"):
        load_image(bad)


def test_text_mode_file_object():
    with pytest.raises(ImageError, match="binary mode|text mode"):
        load_image(io.StringIO("hello"))


def test_web_address_is_refused():
    with pytest.raises(ImageError, match="does not download"):
        load_image("https://example.com/cat.png")


def test_bad_max_pixels():
    with pytest.raises(ImageError, match="max_pixels"):
        load_image(pattern(), max_pixels=0)


def test_image_error_is_an_egokit_error():
    assert issubclass(ImageError, EgokitError)


def test_load_images(tmp_path):
    p = tmp_path / "a.png"
    pattern().save(p)
    out = load_images([p, encode(pattern()), pattern(), np.zeros((2, 2), np.uint8)])
    assert [im.mode for im in out] == ["RGB"] * 4
    assert load_images([]) == []
    with pytest.raises(ImageError, match=r"^image 1: .*not found"):
        load_images([p, tmp_path / "missing.png"])
    with pytest.raises(ImageError, match="list of images"):
        load_images(str(p))


# ------------------------------------------------------------------------------------------- fuzzing


def _valid_samples() -> list[bytes]:
    img = pattern(24, 16)
    exif = Image.Exif()
    exif[0x0112] = 3
    rgba = img.convert("RGBA")
    return [
        encode(img, "PNG"),
        encode(rgba, "PNG"),
        encode(img, "JPEG", quality=80, exif=exif),
        encode(img, "JPEG", quality=80, progressive=True),
        encode(img.convert("P"), "GIF"),
        encode(img, "BMP"),
        encode(img, "TIFF"),
        encode(img, "WEBP"),
    ]


VALID = _valid_samples()
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# PIL warns about damaged metadata (EXIF, TIFF tags) and goes on; only exceptions matter here.
quiet = pytest.mark.filterwarnings("ignore::UserWarning")
FUZZ_MAX_PIXELS = 1_000_000  # keeps the memory of a fuzzed header that declares a huge image small


def _rgb_or_image_error(data: bytes) -> None:
    try:
        img = load_image(data, max_pixels=FUZZ_MAX_PIXELS)
    except ImageError:
        return
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.width > 0 and img.height > 0
    np.asarray(img)  # the pixels are really there


@quiet
@FUZZ
@given(st.binary(min_size=0, max_size=2048))
def test_fuzz_random_bytes(data):
    _rgb_or_image_error(data)


@st.composite
def mutated(draw):
    base = bytearray(draw(st.sampled_from(VALID)))
    edits = draw(st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=12))
    for pos, value in edits:
        base[pos] = value
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(base)))
        base = base[:cut]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(base)))
        base[at:at] = draw(st.binary(min_size=1, max_size=32))
    return bytes(base)


@quiet
@FUZZ
@given(mutated())
def test_fuzz_mutated_images(data):
    _rgb_or_image_error(data)


@quiet
@FUZZ
@given(st.sampled_from(VALID), st.integers(0, 64), st.integers(min_value=0, max_value=2**32 - 1))
def test_fuzz_mutated_headers(base, pos, value):
    """Overwrite four bytes near the start, where sizes, modes and offsets live."""
    data = bytearray(base)
    at = min(pos, len(data) - 4)
    data[at:at + 4] = value.to_bytes(4, "big")
    _rgb_or_image_error(bytes(data))


def test_paths_with_odd_characters(tmp_path):
    with pytest.raises(ImageError):
        load_image("bad\0name.png")
    p = Path(tmp_path) / "ünïcødé image.png"
    pattern().save(p)
    assert_rgb(load_image(p))
