"""PNG bytes from pictures, and the `ReprPNG` mixin that lets a result show itself as a static picture.

Notebooks, GitHub and nbviewer show `_repr_png_` output without a running kernel, so every result
dataclass in the kit inherits `ReprPNG` and implements `to_image()`.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from egokit.errors import InputError

_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}


def to_png_bytes(picture: Any, *, dpi: int = 100) -> bytes:
    """Encode `picture` as PNG bytes.

    `picture` may be a PIL image, a numpy array (anything `egokit.data.images.load_image` accepts; an
    (H, W, 4) uint8 array keeps its alpha), a matplotlib figure (saved at `dpi`, tight bounding box,
    with no version metadata so the bytes are reproducible), or any object with a `to_image()` method.
    The caller's figure is not closed.
    """
    if isinstance(picture, Image.Image):
        return _encode_pil(picture)
    if isinstance(picture, np.ndarray):
        return _encode_pil(_array_to_pil(picture))
    if hasattr(picture, "savefig"):
        buf = io.BytesIO()
        picture.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        return buf.getvalue()
    if callable(getattr(picture, "to_image", None)):
        return to_png_bytes(picture.to_image(), dpi=dpi)
    raise InputError(f"cannot make a PNG from a {type(picture).__name__}: pass a PIL image, a numpy "
                     "array, a matplotlib figure or an object with a to_image() method")


class ReprPNG:
    """Mixin: `_repr_png_` renders `self.to_image()`, so notebooks show a static picture."""

    def to_image(self) -> Image.Image:
        """Return the picture of this object (subclasses implement it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement to_image()")

    def _repr_png_(self) -> bytes:
        return to_png_bytes(self.to_image())


def _encode_pil(img: Image.Image) -> bytes:
    if img.mode not in _PNG_MODES:
        from egokit.data.images import load_image

        img = load_image(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 4:
        return Image.fromarray(np.ascontiguousarray(arr), mode="RGBA")
    from egokit.data.images import load_image

    return load_image(arr)
