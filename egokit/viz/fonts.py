"""The one font every picture of the kit is drawn with: DejaVu Sans, shipped with matplotlib.

Pillow's built-in default font lacks many glyphs ("²" in SA²VP drew as a box); DejaVu Sans has them, and
matplotlib (a dependency) ships it, so PIL pictures and matplotlib figures use the same letters.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from PIL import ImageFont


@functools.cache
def font_path() -> Path:
    """The DejaVu Sans file that matplotlib ships."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


@functools.lru_cache(maxsize=16)
def font(size: int = 12) -> Any:
    """DejaVu Sans at `size` pixels (Pillow's default font where FreeType is missing)."""
    try:
        return ImageFont.truetype(str(font_path()), size)
    except (OSError, ImportError):  # Pillow built without FreeType, or matplotlib without its fonts
        try:
            return ImageFont.load_default(size=size)
        except TypeError:
            return ImageFont.load_default()


def line_height(face: Any) -> int:
    """Pixels from one line of text to the next."""
    top, bottom = face.getbbox("Hgjy")[1::2]
    return int(bottom + max(2, top)) + 2


__all__ = ["font", "font_path", "line_height"]
