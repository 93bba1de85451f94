"""Pictures in widgets at a fixed display size: their own pixel size (scaled down to fit a laptop screen),
never stretched to the output's width, and the same box while the controls change what is drawn."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from egokit.viz.png import to_png_bytes

#: widest a picture is shown, in CSS pixels (a 1280-pixel laptop screen keeps room for the controls beside it)
MAX_WIDTH = 640


def picture_box(picture: Any, max_width: int = MAX_WIDTH) -> tuple[int, int]:
    """(width, height) to show a PIL picture at: its own size, scaled down to `max_width`."""
    width, height = picture.size
    if width > max_width:
        height, width = round(height * max_width / width), max_width
    return width, height


def show_picture(target: w.Image, picture: Any, box: tuple[int, int] | None = None) -> None:
    """Put a PIL `picture` into the Image widget `target`, displayed at `box` (default `picture_box`)."""
    width, height = box or picture_box(picture)
    target.layout.width, target.layout.height = f"{width}px", f"{height}px"
    target.layout.object_fit, target.layout.flex = "contain", "0 0 auto"
    target.value = to_png_bytes(picture)


__all__ = ["MAX_WIDTH", "picture_box", "show_picture"]
