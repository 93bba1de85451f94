"""Image input: turn whatever a person has (a path, bytes, a file, a PIL image, a numpy array) into one
RGB PIL image, or raise `ImageError` with a message that says what is wrong and what to do.

Rules, in one place:

- Files and bytes are decoded fully (`.load()`), so a truncated or corrupt file fails here, not later
  inside a model. Anything the decoder raises on bad data becomes `ImageError`.
- Multi-frame files (animated GIF, multi-page TIFF, ...) give their **first frame**.
- The EXIF orientation tag is applied, so a photo comes out the way a person sees it.
- Transparency (RGBA, LA, PA, palette images with a transparent colour) is composited on **white**.
- CMYK, YCbCr, LAB, HSV, L and 1 are converted by PIL. 16-bit images (``I;16*``) are scaled to 8 bits
  (value / 257). 32-bit integer images (``I``) are taken as 8-bit when every value is in 0..255 and as
  16-bit otherwise (clipped to 0..65535). Float images (``F``) in [0, 1] are scaled by 255, otherwise
  taken as 0..255 and clipped.
- Arrays: shapes (H, W), (H, W, 1), (H, W, 3), (H, W, 4); dtypes uint8, uint16 (scaled / 257), bool,
  float in [0, 1] (no NaN/inf), and other integer dtypes whose values all lie in 0..255.
- A path must name a regular file (not a folder, FIFO, device or socket) of at most `max_bytes` bytes;
  both are checked before anything is read, and only the file's header is read to identify the format
  and its size, so a huge or endless non-image fails at once, without filling memory. A file object is
  read up to `max_bytes` + 1 bytes, no further.
- Images with more than `max_pixels` pixels are refused before their pixels are decoded. That is the
  limit here: PIL's decompression-bomb *warning* is silenced, while PIL's *error* (above twice
  ``PIL.Image.MAX_IMAGE_PIXELS``) still applies and becomes `ImageError` like everything else.
- Other warnings PIL gives about damaged metadata (EXIF, TIFF tags) pass through unchanged.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
from PIL import Image, ImageOps

from egokit.errors import ImageError

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray]

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: far above any image of DEFAULT_MAX_PIXELS pixels
WHITE = (255, 255, 255)
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_ARRAY_SHAPE_HINT = "expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_bytes: int = DEFAULT_MAX_BYTES) -> Image.Image:
    """Return `source` as a new RGB PIL image, fully decoded.

    `source` may be a path (``str`` or ``Path``), encoded bytes (``bytes``, ``bytearray``,
    ``memoryview``), a binary file-like object, a PIL image or a numpy array (see the module docstring
    for accepted shapes and dtypes). Multi-frame files give their first frame. A file or file object
    larger than `max_bytes` is refused before it is read. Raises `ImageError` for anything that is not
    a usable image; the message says what to do.
    """
    _check_limit("max_pixels", max_pixels)
    _check_limit("max_bytes", max_bytes)
    if isinstance(source, Image.Image):
        return _from_pil(source, max_pixels, what="the PIL image")
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return _from_path(source, max_pixels, max_bytes)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), max_pixels, what="the image bytes")
    if hasattr(source, "read"):
        return _from_file(source, max_pixels, max_bytes)
    raise ImageError(
        f"cannot load an image from a {type(source).__name__}: pass a file path, encoded bytes, "
        "a binary file object, a PIL image or a numpy array"
    )


def load_images(sources: Iterable[ImageSource], *, max_pixels: int = DEFAULT_MAX_PIXELS,
                max_bytes: int = DEFAULT_MAX_BYTES) -> list[Image.Image]:
    """Load each of `sources` with `load_image`; the error names the position of a bad one."""
    if isinstance(sources, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray)):
        raise ImageError("load_images takes a list of images; for a single image call load_image(source)")
    images = []
    for i, source in enumerate(sources):
        try:
            images.append(load_image(source, max_pixels=max_pixels, max_bytes=max_bytes))
        except ImageError as e:
            raise ImageError(f"image {i}: {e}") from e
    return images


# ------------------------------------------------------------------------------------------- sources


def _check_limit(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ImageError(f"{name} must be a positive integer, got {value!r}")


def _open_nonblocking(path: str, flags: int) -> int:
    """`open`'s opener: opening a FIFO for reading must not wait for a writer (it is refused next)."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _from_path(source: str | os.PathLike[str], max_pixels: int, max_bytes: int) -> Image.Image:
    text = os.fspath(source)
    if isinstance(text, str) and text.lower().startswith(("http://", "https://")):
        raise ImageError(f"{text} is a web address: egokit does not download images; save the file and pass its path")
    path = Path(text).expanduser()
    try:
        fh = open(path, "rb", opener=_open_nonblocking)
    except FileNotFoundError:
        raise ImageError(f"image file not found: {path} (relative paths start at {Path.cwd()}); check the path") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a folder, not an image file; pass one file inside it") from None
    except PermissionError:
        raise ImageError(f"permission denied reading {path}; check the file's permissions") from None
    except (OSError, ValueError) as e:
        if path.is_dir():
            raise ImageError(f"{path} is a folder, not an image file; pass one file inside it") from None
        raise ImageError(f"could not read {path}: {e}; check that the path names a readable file") from None
    with fh:
        _check_regular_file(os.fstat(fh.fileno()), path, max_bytes)
        return _decode(fh, max_pixels, what=str(path))


def _check_regular_file(st: os.stat_result, path: Path, max_bytes: int) -> None:
    """Refuse what is not a regular file, or is empty or too large, before a byte of it is read."""
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{path} is a folder, not an image file; pass one file inside it")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "a special file")
        raise ImageError(f"{path} is {kind}, not an image file: egokit reads images from regular files "
                         "only; save the image to a file and pass that file's path")
    if st.st_size == 0:
        raise ImageError(f"{path} is empty (0 bytes): pass a PNG, JPEG or other image file")
    if st.st_size > max_bytes:
        raise ImageError(f"{path} is {st.st_size:,} bytes, more than the limit of {max_bytes:,} bytes for an "
                         "image file; pass a smaller or compressed image, or a larger max_bytes if you trust it")


def _from_file(fh: Any, max_pixels: int, max_bytes: int) -> Image.Image:
    if isinstance(fh, io.TextIOBase):
        raise ImageError("the file object is in text mode: open the image with open(path, 'rb')")
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:  # a raw file object may return fewer bytes than asked: read until EOF
        chunk = _read_chunk(fh, max_bytes + 1 - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise ImageError(f"the file object holds more than the limit of {max_bytes:,} bytes for an image; "
                         "pass a smaller or compressed image, or a larger max_bytes if you trust it")
    return _from_bytes(b"".join(chunks), max_pixels, what="the file object")


def _read_chunk(fh: Any, size: int) -> bytes:
    try:
        try:
            data = fh.read(size)
        except TypeError:  # a home-made file object whose read() takes no size
            data = fh.read()
    except Exception as e:  # noqa: BLE001 - a file object can fail in any way
        raise ImageError(f"could not read from the file object ({type(e).__name__}: {e})") from None
    if data is None:  # a non-blocking raw stream with nothing ready
        raise ImageError("the file object has no data ready (non-blocking stream); read the image into bytes first")
    if isinstance(data, str):
        raise ImageError("the file object returned text: open the image in binary mode ('rb')")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"the file object's read() returned {type(data).__name__}, not bytes")
    return bytes(data)


def _from_bytes(data: bytes, max_pixels: int, *, what: str) -> Image.Image:
    if len(data) == 0:
        raise ImageError(f"{what} is empty (0 bytes): pass a PNG, JPEG or other image file")
    return _decode(io.BytesIO(data), max_pixels, what=what)


def _decode(fh: IO[bytes], max_pixels: int, *, what: str) -> Image.Image:
    """Identify the format from the header of seekable `fh`, check the pixel count, then decode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                _check_size(img.width, img.height, max_pixels, what)
                img.load()
                return _to_rgb(ImageOps.exif_transpose(img) or img, what)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{what} is too large to decode safely ({e}); pass a smaller image, or raise "
                         "PIL.Image.MAX_IMAGE_PIXELS if you trust the file") from None
    except Image.UnidentifiedImageError:
        fh.seek(0)
        raise ImageError(_not_an_image_message(fh.read(512), what)) from None
    except Exception as e:  # noqa: BLE001 - decoders raise many types on bad data
        raise ImageError(f"{what} could not be decoded: it is truncated or corrupt ({type(e).__name__}: "
                         f"{_first_line(e)}); re-export or re-download the file") from None


def _from_pil(img: Image.Image, max_pixels: int, *, what: str) -> Image.Image:
    _check_size(img.width, img.height, max_pixels, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            return _to_rgb(img, what)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - a lazily opened image decodes here
        raise ImageError(f"{what} could not be decoded ({type(e).__name__}: {_first_line(e)}); "
                         "load a fresh copy of the file") from None


# ------------------------------------------------------------------------------------------- arrays


def _from_array(arr: np.ndarray, max_pixels: int) -> Image.Image:
    arr = _check_array_shape(arr)
    _check_size(arr.shape[1], arr.shape[0], max_pixels, "the array")
    arr = _array_to_uint8(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    arr = np.ascontiguousarray(arr)
    mode = {2: "L"}.get(arr.ndim) or {3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return _to_rgb(Image.fromarray(arr, mode=mode), "the array")


def _check_array_shape(arr: np.ndarray) -> np.ndarray:
    shape = arr.shape
    if arr.ndim == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4) and min(shape[1:]) > 4:
        raise ImageError(f"array shape {shape} looks channels-first; {_ARRAY_SHAPE_HINT}: "
                         "use arr.transpose(1, 2, 0)")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and shape[2] not in (1, 3, 4)):
        raise ImageError(f"array shape {shape} is not an image; {_ARRAY_SHAPE_HINT}")
    return arr


def _array_to_uint8(arr: np.ndarray) -> np.ndarray:
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return _sixteen_to_eight(arr)
    if kind in "iu":
        if arr.min() < 0 or arr.max() > 255:
            raise ImageError(f"{arr.dtype} array has values outside 0..255 (min {arr.min()}, max {arr.max()}); "
                             "convert it to uint8, or to float in [0, 1]")
        return arr.astype(np.uint8)
    if kind == "f":
        return _float_to_uint8(arr)
    raise ImageError(f"array dtype {arr.dtype} is not an image type; use uint8, uint16, bool, "
                     "or float in [0, 1]")


def _float_to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ImageError("float array contains NaN or infinity; replace them (e.g. np.nan_to_num) first")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ImageError(f"float array values must lie in [0, 1], got [{lo:g}, {hi:g}]; divide by 255 "
                         "if it holds 0..255 values, or convert it to uint8")
    return np.round(arr * 255.0).astype(np.uint8)


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    return np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)


# ------------------------------------------------------------------------------------------- modes


def _to_rgb(img: Image.Image, what: str) -> Image.Image:
    """Convert a loaded PIL image of any mode to a new RGB image."""
    mode = img.mode
    if mode in ("P", "L", "RGB") and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        return _on_white(img.convert("RGBA"))
    if mode in _SIXTEEN_BIT_MODES:
        return Image.fromarray(_sixteen_to_eight(np.asarray(img)), mode="L").convert("RGB")
    if mode == "I":
        return Image.fromarray(_int32_to_uint8(np.asarray(img)), mode="L").convert("RGB")
    if mode == "F":
        return Image.fromarray(_f_mode_to_uint8(np.asarray(img)), mode="L").convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError as e:
        raise ImageError(f"{what} has colour mode {mode!r}, which cannot be converted to RGB ({e}); "
                         "save it as PNG or JPEG first") from None


def _on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (*WHITE, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _int32_to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.size and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8)
    return _sixteen_to_eight(np.clip(arr, 0, 65535))


def _f_mode_to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ImageError("the float image contains NaN or infinity; replace them before loading")
    if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
        arr = arr * 255.0
    return np.round(np.clip(arr, 0.0, 255.0)).astype(np.uint8)


# ------------------------------------------------------------------------------------------- checks


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} has zero size ({width}×{height} pixels); pass an image with pixels in it")
    if width * height > max_pixels:
        raise ImageError(f"{what} has {width}×{height} = {width * height:,} pixels, more than the limit of "
                         f"{max_pixels:,}; downscale it first, or pass a larger max_pixels if you trust it")


def _not_an_image_message(data: bytes, what: str) -> str:
    head = data[:512]
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return f"{what} looks like a text file, not an image; pass a PNG, JPEG or other image file"
        except UnicodeDecodeError:
            pass
    return f"{what} is not an image format PIL recognises; pass a PNG, JPEG, GIF, BMP, TIFF or WebP file"


def _first_line(e: BaseException) -> str:
    text = str(e)
    return text.splitlines()[0] if text else "no details"
