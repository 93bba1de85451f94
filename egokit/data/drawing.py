"""How ShapesWorld draws: shape and mark stencils, patterns, two-tone fills, the background, composition.

Objects are drawn with hard edges and flat colours (no anti-aliasing, no noise), so every object pixel
has exactly one of the object's colours: the main colour, the second colour of a two-tone object, the
dark shade of the main colour where stripes or dots are, or the mark colour. The background is a mild
grey texture (noise plus a faint gradient) that never reaches an object colour.

Sprites (an object's stencil and RGB pixels) are cached per appearance, which keeps generation fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from egokit.data.sampling import randint
from egokit.data.vocab import COLOR_RGB, MARK_COLOR_RGB

#: Stripes and dots are drawn in this fraction of the main colour (a dark shade of it).
PATTERN_SHADE = 0.35


@dataclass(frozen=True)
class ObjectSpec:
    """An object to draw: its attributes, its square extent and the top-left corner of that square."""

    shape: str
    color: str
    pattern: str
    size: str
    extent: int
    x0: int
    y0: int
    color2: str | None = None
    halves: str | None = None
    mark: str | None = None
    mark_color: str | None = None
    name: str | None = None
    track: int | None = None

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.extent / 2.0, self.y0 + self.extent / 2.0)

    @property
    def square(self) -> tuple[int, int, int, int]:
        """The drawing square (x0, y0, x1, y1), ends exclusive."""
        return (self.x0, self.y0, self.x0 + self.extent, self.y0 + self.extent)

    @property
    def colors(self) -> tuple[str, ...]:
        return (self.color,) if self.color2 is None else (self.color, self.color2)

    def values(self) -> frozenset[str]:
        return frozenset((self.shape, *self.colors, self.pattern, self.size))

    def moved(self, x0: int, y0: int) -> ObjectSpec:
        """The same object with its square's top-left corner at (x0, y0)."""
        return ObjectSpec(self.shape, self.color, self.pattern, self.size, self.extent, int(x0), int(y0),
                          self.color2, self.halves, self.mark, self.mark_color, self.name, self.track)


# ---------------------------------------------------------------------------------------------- stencils


def _unit_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an n×n square, scaled to [-1, 1]: (u right, v down)."""
    t = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    return t[None, :], t[:, None]


@lru_cache(maxsize=512)
def shape_stencil(shape: str, extent: int) -> np.ndarray:
    """Boolean (extent, extent) stencil of a shape filling its square (hexagon: flat top and bottom)."""
    u, v = _unit_grid(extent)
    au, av = np.abs(u), np.abs(v)
    if shape == "circle":
        m = u * u + v * v <= 1.0
    elif shape == "square":
        m = (au <= 1.0) & (av <= 1.0)
    elif shape == "diamond":
        m = au + av <= 1.0
    elif shape == "triangle":
        m = (v <= 1.0) & (au <= (v + 1.0) / 2.0)
    elif shape == "hexagon":
        s3 = np.sqrt(3.0)
        m = (av <= s3 / 2.0) & (s3 * au + av <= s3)
    elif shape == "cross":
        m = ((au <= 1 / 3) & (av <= 1.0)) | ((av <= 1 / 3) & (au <= 1.0))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    m = np.broadcast_to(m, (extent, extent)).copy()
    m.flags.writeable = False
    return m


@lru_cache(maxsize=128)
def mark_stencil(mark: str, side: int) -> np.ndarray:
    """Boolean (side, side) stencil of a concept mark; every mark stays distinct at 5×5."""
    u, v = _unit_grid(side)
    r2 = u * u + v * v
    if mark == "dot":
        m = r2 <= 0.8
    elif mark == "ring":
        m = (r2 <= 1.0) & (r2 >= 0.45)
    elif mark == "x":
        m = np.abs(np.abs(u) - np.abs(v)) <= 0.25
    elif mark == "dash":
        m = np.abs(v) <= 0.45 + 0 * u
    elif mark == "bar":
        m = np.abs(u) <= 0.45 + 0 * v
    elif mark == "corner":
        m = (u <= -0.3) | (v >= 0.3)
    else:
        raise ValueError(f"unknown mark {mark!r}")
    m = np.broadcast_to(m, (side, side)).copy()
    m.flags.writeable = False
    return m


def mark_side(extent: int) -> int:
    """Side of a concept's mark for an object of this extent (at least 5 px)."""
    return max(5, int(round(0.3 * extent)))


def mark_offset(shape: str, extent: int) -> tuple[int, int]:
    """Top-left corner (x, y) of the mark inside the sprite: centred, lower for triangles."""
    m = mark_side(extent)
    x = (extent - m) // 2
    y = (extent - m) // 2 + (int(round(0.15 * extent)) if shape == "triangle" else 0)
    return x, y


def _pattern_stencil(pattern: str, extent: int) -> np.ndarray | None:
    if pattern == "solid":
        return None
    yy, xx = np.mgrid[0:extent, 0:extent]
    if pattern == "striped":
        return ((xx + yy) // 2) % 2 == 1
    if pattern == "dotted":
        return ((xx % 4) >= 1) & ((xx % 4) <= 2) & ((yy % 4) >= 1) & ((yy % 4) <= 2)
    raise ValueError(f"unknown pattern {pattern!r}")


def shade(color: str) -> tuple[int, int, int]:
    """The dark shade of a colour used for its stripes and dots."""
    r, g, b = COLOR_RGB[color]
    return (int(r * PATTERN_SHADE), int(g * PATTERN_SHADE), int(b * PATTERN_SHADE))


@lru_cache(maxsize=8192)
def sprite(shape: str, extent: int, pattern: str, color: str, color2: str | None = None,
           halves: str | None = None, mark: str | None = None,
           mark_color: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An object's stencil (extent, extent) bool and its pixels (extent, extent, 3) uint8 (read-only)."""
    stencil = shape_stencil(shape, extent)
    rgb = np.empty((extent, extent, 3), dtype=np.uint8)
    rgb[:] = COLOR_RGB[color]
    if color2 is not None:
        half = extent // 2
        if halves == "top-bottom":
            rgb[half:, :] = COLOR_RGB[color2]
        else:
            rgb[:, half:] = COLOR_RGB[color2]
    pat = _pattern_stencil(pattern, extent)
    if pat is not None:
        rgb[pat] = shade(color)
    if mark is not None:
        m = mark_side(extent)
        mx, my = mark_offset(shape, extent)
        region = rgb[my:my + m, mx:mx + m]
        region[mark_stencil(mark, m)] = MARK_COLOR_RGB[mark_color or "black"]
    rgb[~stencil] = 0
    rgb.flags.writeable = False
    return stencil, rgb


def mark_pixels(spec: ObjectSpec, size: int) -> np.ndarray:
    """(size, size) bool: where the spec's mark is drawn (empty when it has none)."""
    out = np.zeros((size, size), dtype=bool)
    if spec.mark is None:
        return out
    m = mark_side(spec.extent)
    mx, my = mark_offset(spec.shape, spec.extent)
    local = mark_stencil(spec.mark, m) & shape_stencil(spec.shape, spec.extent)[my:my + m, mx:mx + m]
    out[spec.y0 + my:spec.y0 + my + m, spec.x0 + mx:spec.x0 + mx + m] = local
    return out


# ---------------------------------------------------------------------------------------------- images


def background(rng: np.random.Generator, size: int, noise: int = 6) -> np.ndarray:
    """A mild grey texture: a grey level in [112, 144], a faint tint (±3 per channel), per-pixel noise of
    ±`noise` and a gentle linear gradient of at most ±6 levels. With the default noise, values stay
    within [97, 159]; at most within [73, 183] (noise ≤ 30), so no clipping is ever needed."""
    grey = randint(rng, 112, 145)
    tint = [randint(rng, -3, 4) for _ in range(3)]
    angle = 2.0 * np.pi * rng.random()
    amp = 12.0 * rng.random() - 6.0
    t = _centred_ramp(size)
    plane = (np.float32(amp * np.cos(angle)) * t)[None, :] + (np.float32(amp * np.sin(angle)) * t
                                                             + np.float32(grey + 0.5))[:, None]
    if noise > 0:
        plane = plane + rng.integers(-noise, noise + 1, size=(size, size), dtype=np.int16)
    img = np.empty((size, size, 3), dtype=np.uint8)
    for c in range(3):
        img[:, :, c] = plane + np.float32(tint[c])  # truncation of (value + 0.5): rounding
    return img


@lru_cache(maxsize=16)
def _centred_ramp(size: int) -> np.ndarray:
    """Pixel-centre coordinates scaled to [-1, 1] (float32), for the background gradient."""
    r = ((np.arange(size, dtype=np.float32) + 0.5) / size - 0.5) * 2.0
    r.flags.writeable = False
    return r


def render(specs: list[ObjectSpec], size: int, rng: np.random.Generator,
           noise: int = 6) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw objects over a fresh background, later ones on top. Returns the image and each object's
    visible-pixel mask (objects hidden by later ones lose those pixels)."""
    image = background(rng, size, noise)
    masks: list[np.ndarray] = []
    for spec in specs:
        x0, y0, x1, y1 = spec.square
        if x0 < 0 or y0 < 0 or x1 > size or y1 > size:
            raise ValueError(f"object square {spec.square} leaves the {size}x{size} image")
        stencil, rgb = sprite(spec.shape, spec.extent, spec.pattern, spec.color, spec.color2,
                              spec.halves, spec.mark, spec.mark_color)
        region = image[y0:y1, x0:x1]
        region[stencil] = rgb[stencil]
        full = np.zeros((size, size), dtype=bool)
        full[y0:y1, x0:x1] = stencil
        for earlier in masks:
            earlier &= ~full
        masks.append(full)
    return image, masks
