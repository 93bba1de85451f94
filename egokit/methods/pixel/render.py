"""Pictures of a `PixelResult`: the image with words' points and boxes, the answer underneath in the same colours.

Deterministic (same result, same pixels); small images are enlarged by a whole factor (nearest) first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from egokit.viz import fonts
from egokit.viz.scene import PALETTE, upscale

GREY = (150, 150, 150)
TEXT = (20, 20, 20)
BACKGROUND = (255, 255, 255)
REFER_COLOUR = (214, 39, 40)


def is_drawn(word: str) -> bool:
    """Words that get a point in the overview (not punctuation)."""
    return any(ch.isalnum() for ch in word)


def word_colours(words: list[str]) -> list[tuple[int, int, int]]:
    """A palette colour per drawn word (in order), grey for punctuation."""
    out, k = [], 0
    for w in words:
        if is_drawn(w):
            out.append(PALETTE[k % len(PALETTE)])
            k += 1
        else:
            out.append(GREY)
    return out


def _canvas(result: Any, target: int) -> tuple[Image.Image, float]:
    if result.image is not None:
        img, factor = upscale(result.image, target)
        return img.convert("RGB"), float(factor)
    h, w = result.image_size
    factor = max(1, target // max(h, w))
    return Image.new("RGB", (w * factor, h * factor), (235, 235, 235)), float(factor)


def _dot(draw: ImageDraw.ImageDraw, x: float, y: float, r: float, colour: tuple[int, int, int]) -> None:
    draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=(255, 255, 255), width=1)


def _rect(draw: ImageDraw.ImageDraw, box: Any, s: float, colour: tuple[int, int, int], width: int) -> None:
    x0, y0, x1, y1 = (float(v) * s for v in box)
    if np.isfinite([x0, y0, x1, y1]).all():
        draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour, width=width)


def result_picture(result: Any, word: int | None = None, target: int = 256, font_size: int = 15) -> Image.Image:
    """The picture of a result: the overview (every word's point), one word (its box and point, the others'
    points small and grey), or for `refer` the referred box (its two corners as dots) with the other tokens'
    points in grey."""
    img, s = _canvas(result, target)
    draw = ImageDraw.Draw(img)
    colours = word_colours(result.words)
    points = result.word_points.tolist()
    highlight: set[int] = set()
    if result.kind == "refer" and word is None:
        for pair in result.token_points.tolist():
            for x, y in pair:
                _dot(draw, x * s, y * s, 2.5, GREY)
        _rect(draw, result.box, s, REFER_COLOUR, 3)
        if result.box_points is not None:
            for x, y in result.box_points.reshape(-1, 2).tolist():
                _dot(draw, x * s, y * s, 4, REFER_COLOUR)
        colours = [REFER_COLOUR] * len(result.words)
    elif word is None:
        for k, (x, y) in enumerate(points):
            if is_drawn(result.words[k]):
                _dot(draw, x * s, y * s, 5, colours[k])
    else:
        for k, (x, y) in enumerate(points):
            if k != word and is_drawn(result.words[k]):
                _dot(draw, x * s, y * s, 3, GREY)
        colour = colours[word] if colours[word] != GREY else REFER_COLOUR
        _rect(draw, result.word_boxes[word].tolist(), s, colour, 3)
        x, y = points[word]
        _dot(draw, x * s, y * s, 6, colour)
        highlight = {word}
        colours = [colour if k == word else GREY for k in range(len(result.words))]
    return _with_text(img, result.words, colours, highlight, font_size)


def _with_text(img: Image.Image, words: list[str], colours: list[tuple[int, int, int]], underline: set[int],
               font_size: int) -> Image.Image:
    font = fonts.font(font_size)
    top, bottom = font.getbbox("Hgjy")[1::2]
    line_h = int(bottom + max(2, top)) + 2
    lines: list[list[int]] = [[]]
    space = font.getlength(" ")
    width = 4.0
    for k, w in enumerate(words):
        wl = font.getlength(w)
        if lines[-1] and width + wl > img.width - 4:
            lines.append([])
            width = 4.0
        lines[-1].append(k)
        width += wl + space
    sheet = Image.new("RGB", (img.width, img.height + 8 + line_h * len(lines)), BACKGROUND)
    sheet.paste(img, (0, 0))
    draw = ImageDraw.Draw(sheet)
    y = img.height + 4
    for line in lines:
        x = 4.0
        for k in line:
            draw.text((x, y), words[k], font=font, fill=colours[k] if colours[k] != GREY else TEXT)
            wl = font.getlength(words[k])
            if k in underline:
                draw.line((x, y + line_h - 2, x + wl, y + line_h - 2), fill=colours[k], width=2)
            x += wl + space
        y += line_h
    return sheet


def trace_picture(image: Any, words: list[str], trace: Any, boxes: list[Any], target: int = 256,
                  font_size: int = 15) -> Image.Image:
    """A simulated mouse trace over the image (a line, darker with time) with each word's segment box in the
    word's colour, and the caption underneath in the same colours (the "trace" targets of the recipe)."""
    img, factor = upscale(image, target)
    img = img.convert("RGB")
    s = float(factor)
    draw = ImageDraw.Draw(img)
    pts = np.asarray(trace, dtype=float) * s + s / 2
    n = len(pts)
    for k in range(n - 1):
        shade = int(230 - 200 * k / max(1, n - 1))
        draw.line((*pts[k], *pts[k + 1]), fill=(shade, shade, shade), width=2)
    colours = word_colours(words)
    for k, box in enumerate(boxes):
        if box is not None and is_drawn(words[k]):
            _rect(draw, box, s, colours[k], 2)
    return _with_text(img, list(words), colours, set(), font_size)
