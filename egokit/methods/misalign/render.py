"""Pictures and HTML of a misalignment result (pure rendering: PIL, matplotlib colour maps, no model).

Word colours: red for negative scores (the word lowers the image–caption match: misaligned), blue for
positive ones (the word supports the match); the strength is |score| / the largest |score| of the
caption. Flagged words are bold and underlined.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from egokit.errors import InputError
from egokit.viz import fonts

if TYPE_CHECKING:
    from egokit.methods.misalign.result import MisalignmentResult

NEGATIVE = (214, 39, 40)
POSITIVE = (31, 119, 180)
TEXT = (20, 20, 20)
BACKGROUND = (255, 255, 255)
TARGET = 256


def word_strengths(scores: Any) -> np.ndarray:
    """Each word's |score| / the largest |score| (0 for NaN; all 0 when every score is 0)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    scale = float(np.abs(s).max()) if s.size else 0.0
    return np.abs(s) / scale if scale > 0 else np.zeros_like(s)


def word_index(result: MisalignmentResult, word: int | str | None) -> int | None:
    """A word given by index or text (first match) → its index; None → the most negative word."""
    if word is None:
        return result.most_negative
    if isinstance(word, str):
        try:
            return result.words.index(word)
        except ValueError:
            raise InputError(f"{word!r} is not a word of the caption; words: {result.words}") from None
    i = int(word)
    if not 0 <= i < len(result.words):
        raise InputError(f"word index {i} is outside the caption's {len(result.words)} words")
    return i


def caption_html(result: MisalignmentResult) -> str:
    """The caption as HTML spans coloured by score, with the scores in a summary line."""
    strength = word_strengths(result.scores.numpy())
    flagged = set(result.flagged)
    spans = []
    for i, (w, a) in enumerate(zip(result.words, strength)):
        score = float(result.scores[i])
        colour = NEGATIVE if score < 0 else POSITIVE
        style = f"background: rgba({colour[0]},{colour[1]},{colour[2]},{0.85 * a:.3f}); padding: 1px 3px; " \
                "border-radius: 3px"
        if i in flagged:
            style += "; font-weight: bold; text-decoration: underline"
        spans.append(f'<span style="{style}" title="{html.escape(w)}: {score:+.3g}">{html.escape(w)}</span>')
    phrases = ", ".join(f"“{html.escape(p['text'])}”" for p in result.phrases) or "none"
    summary = (f"s = {_num(result.similarity)} · CLIPScore = {_num(result.clipscore)} · F-CLIPScore = "
               f"{_num(result.fclipscore)} · ε = {_num(result.eps)} · flagged: {phrases}")
    return (f'<div style="font-family: sans-serif; line-height: 1.9">{" ".join(spans)}'
            f'<div style="font-size: 85%; color: #555">{summary}</div></div>')


def _upscaled(img: Image.Image, target: int = TARGET) -> Image.Image:
    factor = max(1, target // max(img.size))
    return img if factor == 1 else img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def heatmap_picture(result: MisalignmentResult, word: int | str | None = None) -> Image.Image:
    """The image with word `word`'s heatmap laid over it; the plain image when the result has no heatmaps
    or no word is chosen. Drawn is the map's magnitude (how much the patch's evidence depends on the
    word, either way), on the word's own scale, so object colours are not confused with a sign."""
    if result.image is None:
        raise InputError("this result keeps no image (score it with keep_image=True to draw it)")
    from egokit.viz.heatmap import overlay_heatmap

    base = Image.fromarray(result.image, mode="RGB")
    i = word_index(result, word)
    if i is not None and result.heatmaps is not None and result.boxes is not None:
        values = np.abs(result.heatmaps[i].numpy())
        scale = float(values.max()) or None  # each word on its own scale: where it looks most
        base = overlay_heatmap(base, values, result.boxes.numpy(), alpha=0.75, vmin=0.0, vmax=scale)
    return _upscaled(base)


def caption_strip(result: MisalignmentResult, width: int, font_size: int = 15) -> Image.Image:
    """The caption drawn as coloured word boxes, wrapped to `width`, plus one line of scores."""
    font = fonts.font(font_size)
    small = fonts.font(max(9, font_size - 3))
    strength = word_strengths(result.scores.numpy())
    flagged = set(result.flagged)
    top, bottom = font.getbbox("Hgjy")[1::2]
    line_h = int(bottom + max(2, top)) + 6
    space = font.getlength(" ") + 2
    placed, x, y = [], 4.0, 4
    for w in result.words:
        wl = font.getlength(w) + 4
        if x > 4 and x + wl > width - 4:
            x, y = 4.0, y + line_h
        placed.append((x, y, wl))
        x += wl + space
    summary = [f"s={_num(result.similarity)}  CLIPScore={_num(result.clipscore)}",
               f"F-CLIPScore={_num(result.fclipscore)}  eps={_num(result.eps)}"]
    small_h = int(small.getbbox("Hgjy")[3]) + 4
    height = y + line_h + small_h * len(summary) + 6
    strip = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for i, (w, (x0, y0, wl)) in enumerate(zip(result.words, placed)):
        score = float(result.scores[i])
        colour = np.array(NEGATIVE if score < 0 else POSITIVE, dtype=np.float64)
        a = 0.85 * float(strength[i])
        fill = tuple(int(round(c)) for c in (1 - a) * np.array(BACKGROUND) + a * colour)
        draw.rectangle((x0, y0, x0 + wl, y0 + line_h - 3), fill=fill)
        draw.text((x0 + 2, y0 + 1), w, font=font, fill=TEXT)
        if i in flagged:
            draw.line((x0 + 2, y0 + line_h - 5, x0 + wl - 2, y0 + line_h - 5), fill=TEXT, width=2)
    for k, line in enumerate(summary):
        draw.text((4, y + line_h + 2 + k * small_h), line, font=small, fill=(85, 85, 85))
    return strip


def _num(x: float) -> str:
    """Short number: 3 decimals, or scientific notation for small magnitudes."""
    x = float(x)
    if x == 0:
        return "0"
    return f"{x:.2e}" if abs(x) < 0.01 else f"{x:.3f}"


def result_picture(result: MisalignmentResult, word: int | str | None = None) -> Image.Image:
    """The image (with the chosen word's heatmap, by default the most negative word's) over the caption
    coloured by score."""
    if result.image is None:
        return caption_strip(result, TARGET)
    top = heatmap_picture(result, word)
    i = word_index(result, word)
    label = f"where “{result.words[i]}” looks" if i is not None and result.heatmaps is not None else ""
    width = max(top.width, TARGET)
    strip = caption_strip(result, width)
    font = fonts.font(12)
    label_h = 16 if label else 0
    canvas = Image.new("RGB", (width, top.height + label_h + strip.height), BACKGROUND)
    canvas.paste(top, ((width - top.width) // 2, 0))
    if label:
        ImageDraw.Draw(canvas).text((4, top.height + 1), label, font=font, fill=(85, 85, 85))
    canvas.paste(strip, (0, top.height + label_h))
    return canvas


__all__ = ["caption_html", "caption_strip", "heatmap_picture", "result_picture", "word_index", "word_strengths"]
