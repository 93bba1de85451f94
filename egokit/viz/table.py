"""A flat dict of metrics as a picture: one `name  value` row each (what an evaluation that is only
numbers shows in a notebook)."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from egokit.viz import fonts


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def metrics_table_picture(metrics: dict[str, Any], title: str = "", font_size: int = 14) -> Image.Image:
    """A white picture listing `metrics` in order, names left and values right, under `title`."""
    font = fonts.font(font_size)
    rows = [(str(k), _text(v)) for k, v in metrics.items()] or [("(no metrics)", "")]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = lambda s: int(probe.textlength(s, font=font))  # noqa: E731
    name_w = max(width(k) for k, _ in rows)
    value_w = max(width(v) for _, v in rows)
    line = font_size + 6
    pad = 10
    top = pad + (line + 4 if title else 0)
    img = Image.new("RGB", (max(pad * 3 + name_w + value_w, width(title) + 2 * pad), top + line * len(rows) + pad),
                    "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((pad, pad), title, fill=(0, 0, 0), font=font)
    for i, (k, v) in enumerate(rows):
        y = top + i * line
        if i % 2 == 0:
            draw.rectangle((pad // 2, y - 2, img.width - pad // 2, y + line - 4), fill=(240, 240, 245))
        draw.text((pad, y), k, fill=(40, 40, 40), font=font)
        draw.text((img.width - pad - width(v), y), v, fill=(0, 0, 0), font=font)
    return img


__all__ = ["metrics_table_picture"]
