"""Scene pictures: masks, boxes and labels drawn on an image; captions with flagged words; galleries.

Small images (ShapesWorld scenes are 64×64) are upscaled by a whole factor with nearest-neighbour
sampling so every pixel stays a crisp square and annotations are drawn at the larger size. Everything
here is deterministic: same inputs, same pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from egokit.errors import InputError
from egokit.viz import fonts

# tab10, so colours match matplotlib plots elsewhere in the kit
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
FLAG_COLOUR = (214, 39, 40)
TEXT_COLOUR = (20, 20, 20)
BACKGROUND = (255, 255, 255)
DEFAULT_TARGET = 256
_OBJECT_LABEL_FIELDS = ("size", "color", "pattern", "shape")


def upscale(image: Any, target: int = DEFAULT_TARGET) -> tuple[Image.Image, int]:
    """Return (`image` enlarged by a whole factor with nearest sampling, the factor).

    The factor is ``target // longest side`` (at least 1), so a 64×64 image becomes 256×256 and a large
    image is left as it is.
    """
    from egokit.data.images import load_image

    img = load_image(image)
    factor = max(1, int(target) // max(img.size))
    if factor == 1:
        return img, 1
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST), factor


def draw_scene(
    image: Any,
    objects: Sequence[Any] | None = None,
    boxes: Any = None,
    masks: Any = None,
    labels: Sequence[str] | None = None,
    *,
    target: int = DEFAULT_TARGET,
) -> Image.Image:
    """Draw mask tints and outlines, boxes and labels on `image`; return a new, upscaled RGB image.

    `objects` (optional) are scene objects with ``.box`` (x0, y0, x1, y1, end exclusive), ``.mask``
    ((H, W) bool) and attributes such as ``.size .color .pattern .shape`` that make the default label.
    `boxes` ((N, 4)), `masks` ((N, H, W) or a list of (H, W)) and `labels` override what `objects`
    give. Item ``i`` is drawn in colour ``PALETTE[i % 10]``. Coordinates are in pixels of `image`.
    """
    base, factor = upscale(image, target)
    size = (base.width // factor, base.height // factor)
    boxes, masks, labels = _items_from(objects, boxes, masks, labels)
    box_arr = _check_boxes(boxes)
    mask_list = _check_masks(masks, size)
    n = max(len(box_arr), len(mask_list))
    if labels is not None and len(labels) != n:
        raise InputError(f"{len(labels)} labels for {n} objects: pass one label per box or mask")
    canvas = base.copy()
    for i, mask in enumerate(mask_list):
        canvas = _tint_and_outline(canvas, mask, factor, PALETTE[i % len(PALETTE)])
    draw = ImageDraw.Draw(canvas)
    for i, box in enumerate(box_arr):
        x0, y0, x1, y1 = (int(v) * factor for v in box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=PALETTE[i % len(PALETTE)], width=2)
    if labels:
        _draw_labels(draw, labels, _regions(box_arr, mask_list, n, factor), canvas.size)
    return canvas


def draw_caption(
    image: Any,
    caption: str | Sequence[str],
    highlight: Iterable[int] = (),
    *,
    target: int = DEFAULT_TARGET,
    font_size: int = 15,
) -> Image.Image:
    """Return `image` (upscaled) with its caption written underneath.

    `caption` is a string (split on spaces) or a list of words; the words at the indices in
    `highlight` (e.g. the wrong word of a foil) are drawn in red and underlined.
    """
    img, _ = upscale(image, target)
    words = caption.split() if isinstance(caption, str) else [str(w) for w in caption]
    flagged = {int(i) for i in highlight}
    if any(i < 0 or i >= len(words) for i in flagged):
        raise InputError(f"highlight indices {sorted(flagged)} are outside the caption's {len(words)} words")
    font = fonts.font(font_size)
    lines = _wrap_words(words, font, img.width - 8)
    line_h = fonts.line_height(font)
    strip = Image.new("RGB", (img.width, img.height + 8 + line_h * len(lines)), BACKGROUND)
    strip.paste(img, (0, 0))
    draw = ImageDraw.Draw(strip)
    y = img.height + 4
    for line in lines:
        x = 4
        for index, word in line:
            colour = FLAG_COLOUR if index in flagged else TEXT_COLOUR
            draw.text((x, y), word, font=font, fill=colour)
            width = font.getlength(word)
            if index in flagged:
                draw.line((x, y + line_h - 2, x + width, y + line_h - 2), fill=colour, width=2)
            x += width + font.getlength(" ")
        y += line_h
    return strip


def gallery(
    images: Sequence[Any],
    titles: Sequence[str] | None = None,
    cols: int = 4,
    *,
    tile: int = DEFAULT_TARGET,
    font_size: int = 15,
) -> Image.Image:
    """Lay `images` out in a grid of `cols` columns, `tile` pixels wide, each image's title (wrapped to
    the tile width) underneath.

    Each image is fitted into `tile` × 2·`tile` keeping its aspect ratio: small images are enlarged by a
    whole factor with nearest sampling (crisp pixels), large ones shrunk with Lanczos. Images in a row
    are centred on the row's tallest image.
    """
    if len(images) == 0:
        raise InputError("gallery needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise InputError(f"{len(titles)} titles for {len(images)} images: pass one title per image")
    if int(cols) <= 0:
        raise InputError(f"cols must be a positive integer, got {cols!r}")
    cols, gap = min(int(cols), len(images)), 8
    font = fonts.font(font_size)
    line_h = fonts.line_height(font)
    fitted = [_fit(image, tile, 2 * tile) for image in images]
    wrapped = [_wrap_text(str(t), font, tile - 8) for t in (titles or [""] * len(images))]
    caption_h = (max(len(w) for w in wrapped) * line_h + 8) if titles else 0
    row_heights = [max(f.height for f in fitted[r:r + cols]) for r in range(0, len(fitted), cols)]
    sheet = Image.new("RGB", (cols * (tile + gap) + gap, sum(row_heights) + len(row_heights) * (caption_h + gap) + gap),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = gap
    for r, row_h in enumerate(row_heights):
        for c, (img, lines) in enumerate(zip(fitted[r * cols:(r + 1) * cols], wrapped[r * cols:(r + 1) * cols])):
            x = gap + c * (tile + gap)
            sheet.paste(img, (x + (tile - img.width) // 2, y + (row_h - img.height) // 2))
            for j, line in enumerate(lines):
                offset = (tile - font.getlength(line)) / 2
                draw.text((x + offset, y + row_h + 4 + j * line_h), line, font=font, fill=TEXT_COLOUR)
        y += row_h + caption_h + gap
    return sheet


# ------------------------------------------------------------------------------------------- items


def _items_from(objects: Sequence[Any] | None, boxes: Any, masks: Any, labels: Any) -> tuple[Any, Any, Any]:
    if objects is None:
        return boxes, masks, labels
    objects = list(objects)
    if boxes is None and objects and all(getattr(o, "box", None) is not None for o in objects):
        boxes = [o.box for o in objects]
    if masks is None and objects and all(getattr(o, "mask", None) is not None for o in objects):
        masks = [o.mask for o in objects]
    if labels is None:
        labels = [object_label(o) for o in objects]
    return boxes, masks, labels


def object_label(obj: Any) -> str:
    """A short label for a scene object: its ``label`` or ``name`` (a personal concept's name token),
    else "size color pattern shape"."""
    for attr in ("label", "name"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            return value
    size, color, pattern, shape = (getattr(obj, f, None) for f in _OBJECT_LABEL_FIELDS)
    color2, mark, mark_color = (getattr(obj, f, None) for f in ("color2", "mark", "mark_color"))
    if color2:  # a two-tone object: its colours say more than its pattern
        color, pattern = f"{color}/{color2}", None
    label = " ".join(str(p) for p in (size, color, pattern, shape) if p not in (None, ""))
    if mark:
        label += " + " + " ".join(str(p) for p in (mark_color, mark) if p)
    return label


def _check_boxes(boxes: Any) -> np.ndarray:
    if boxes is None:
        return np.zeros((0, 4), dtype=np.int64)
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    if not np.isfinite(arr).all():
        raise InputError("boxes contain NaN or infinity")
    return np.rint(arr).astype(np.int64)


def _check_masks(masks: Any, size: tuple[int, int]) -> list[np.ndarray]:
    if masks is None:
        return []
    width, height = size
    out = []
    for i, mask in enumerate(masks):
        m = np.asarray(mask).astype(bool)
        if m.shape != (height, width):
            raise InputError(f"mask {i} has shape {m.shape}, but the image is {height}×{width} (H×W)")
        out.append(m)
    return out


# ------------------------------------------------------------------------------------------- drawing


def _tint_and_outline(canvas: Image.Image, mask: np.ndarray, factor: int, colour: tuple[int, int, int]) -> Image.Image:
    big = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
    edge = big & ~_erode(big, max(1, factor // 2))
    pixels = np.asarray(canvas, dtype=np.float64).copy()
    tint = np.array(colour, dtype=np.float64)
    pixels[big] = 0.7 * pixels[big] + 0.3 * tint
    pixels[edge] = tint
    return Image.fromarray(np.round(pixels).astype(np.uint8), mode="RGB")


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        padded = np.pad(out, 1, constant_values=False)
        out = (out & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return out


def _regions(boxes: np.ndarray, masks: list[np.ndarray], n: int, factor: int) -> list[tuple[int, ...] | None]:
    """Each item's box on the upscaled canvas: its box, else its mask's bounding box, else None."""
    regions: list[tuple[int, ...] | None] = []
    for i in range(n):
        if i < len(boxes):
            regions.append(tuple(int(v) * factor for v in boxes[i]))
        elif masks[i].any():
            ys, xs = np.nonzero(masks[i])
            regions.append((int(xs.min()) * factor, int(ys.min()) * factor,
                            (int(xs.max()) + 1) * factor, (int(ys.max()) + 1) * factor))
        else:
            regions.append(None)
    return regions


def _draw_labels(draw: ImageDraw.ImageDraw, labels: Sequence[str], regions: list[tuple[int, ...] | None],
                 canvas_size: tuple[int, int]) -> None:
    """Draw each label on a tag in its item's colour: above its box, else below, else inside, choosing
    the first place that does not cover a tag drawn before."""
    font = fonts.font(12)
    placed: list[tuple[int, int, int, int]] = []
    for i, (text, region) in enumerate(zip(labels, regions)):
        if not text or region is None:
            continue
        w, h = int(font.getlength(text)) + 6, fonts.line_height(font) + 2
        x0, y0, x1, y1 = region
        spots = [(x0, y0 - h), (x0, y1), (x0, y0), (x0, y1 - h)]
        rects = [_clamp((x, y, x + w, y + h), canvas_size) for x, y in spots]
        rect = next((r for r in rects if not any(_overlap(r, p) for p in placed)), rects[0])
        placed.append(rect)
        colour = PALETTE[i % len(PALETTE)]
        draw.rectangle(rect, fill=colour)
        luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        draw.text((rect[0] + 3, rect[1] + 1), text, font=font, fill=(0, 0, 0) if luminance > 150 else (255, 255, 255))


def _clamp(rect: tuple[int, int, int, int], canvas_size: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = rect
    dx = -x0 if x0 < 0 else min(0, canvas_size[0] - 1 - x1)
    dy = -y0 if y0 < 0 else min(0, canvas_size[1] - 1 - y1)
    return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _fit(image: Any, width: int, height: int) -> Image.Image:
    from egokit.data.images import load_image

    img = load_image(image)
    scale = min(width / img.width, height / img.height)
    if scale >= 1:
        factor = int(scale)
        return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST) if factor > 1 else img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


# ------------------------------------------------------------------------------------------- text


def _wrap_text(text: str, font: Any, width: float) -> list[str]:
    lines = []
    for paragraph in text.split("\n"):
        lines.extend(" ".join(w for _, w in line) for line in _wrap_words(paragraph.split(), font, width))
    return lines or [""]


def _wrap_words(words: Sequence[str], font: Any, width: float) -> list[list[tuple[int, str]]]:
    """Greedy word wrap; keeps each word's index (for highlighting); splits words longer than a line."""
    lines: list[list[tuple[int, str]]] = [[]]
    for index, word in enumerate(words):
        for piece in _split_long(word, font, width):
            candidate = " ".join([w for _, w in lines[-1]] + [piece])
            if lines[-1] and font.getlength(candidate) > width:
                lines.append([])
            lines[-1].append((index, piece))
    return lines if lines[-1] or len(lines) == 1 else lines[:-1]


def _split_long(word: str, font: Any, width: float) -> list[str]:
    pieces, current = [], ""
    for ch in word:
        if current and font.getlength(current + ch) > width:
            pieces.append(current)
            current = ""
        current += ch
    return [*pieces, current] if current or not pieces else pieces
