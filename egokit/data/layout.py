"""Where objects go: random placement with no overlap (or bounded overlap), and smooth trajectories.

Placement works on drawing squares (an object's extent × extent square). Without overlap, squares keep a
gap of at least `GAP` pixels, so the centres of any two objects are far apart along at least one axis
and every spatial relation is clear. With overlap, squares may intersect up to `MAX_OVERLAP` of the
smaller one, and centres stay at least `MIN_CENTRE_GAP` pixels apart along some axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from egokit.data.drawing import ObjectSpec
from egokit.data.sampling import randint

GAP = 2
MARGIN = 1
MAX_OVERLAP = 0.35
MIN_CENTRE_GAP = 4.0


Square = tuple[int, int, int]  # (x0, y0, extent)


def squares_clear(a: Square, b: Square, overlap: bool = False) -> bool:
    """Whether two drawing squares may sit together (no overlap: a gap of `GAP` px between them;
    overlap: at most `MAX_OVERLAP` of the smaller square covered, centres `MIN_CENTRE_GAP` apart)."""
    ax0, ay0, ae = a
    bx0, by0, be = b
    if not overlap:
        return (ax0 + ae + GAP <= bx0 or bx0 + be + GAP <= ax0
                or ay0 + ae + GAP <= by0 or by0 + be + GAP <= ay0)
    ix = max(0, min(ax0 + ae, bx0 + be) - max(ax0, bx0))
    iy = max(0, min(ay0 + ae, by0 + be) - max(ay0, by0))
    centre_gap = max(abs((ax0 + ae / 2) - (bx0 + be / 2)), abs((ay0 + ae / 2) - (by0 + be / 2)))
    return ix * iy <= MAX_OVERLAP * min(ae, be) ** 2 and centre_gap >= MIN_CENTRE_GAP


def clear_of(a: ObjectSpec, b: ObjectSpec, overlap: bool = False) -> bool:
    """Whether two placed objects may sit together (see `squares_clear`)."""
    return squares_clear((a.x0, a.y0, a.extent), (b.x0, b.y0, b.extent), overlap)


def random_corner(rng: np.random.Generator, extent: int, size: int) -> tuple[int, int]:
    """A random top-left corner that keeps the square inside the image with a small margin."""
    hi = size - extent - MARGIN
    return randint(rng, MARGIN, hi + 1), randint(rng, MARGIN, hi + 1)


def place(rng: np.random.Generator, specs: Sequence[ObjectSpec], size: int, overlap: bool = False,
          placed: Sequence[ObjectSpec] = (), tries: int = 60, restarts: int = 8) -> list[ObjectSpec]:
    """Place `specs` one after the other at random spots clear of `placed` and of each other.

    When an object finds no spot in `tries` attempts (earlier objects can block the image), the whole
    layout of `specs` is drawn again, up to `restarts` times; then the best layout found is returned and
    objects that found no spot in it are left out."""
    best: list[ObjectSpec] = []
    for _ in range(restarts + 1):
        got = _place_once(rng, specs, size, overlap, placed, tries)
        if len(got) > len(best):
            best = got
        if len(best) == len(specs):
            break
    return best


def _place_once(rng: np.random.Generator, specs: Sequence[ObjectSpec], size: int, overlap: bool,
                placed: Sequence[ObjectSpec], tries: int) -> list[ObjectSpec]:
    taken: list[Square] = [(s.x0, s.y0, s.extent) for s in placed]
    out: list[ObjectSpec] = []
    for spec in specs:
        e = spec.extent
        for _ in range(tries):
            x, y = random_corner(rng, e, size)
            if all(squares_clear((x, y, e), other, overlap) for other in taken):
                taken.append((x, y, e))
                out.append(spec.moved(x, y))
                break
    return out


def place_near_centre(rng: np.random.Generator, spec: ObjectSpec, size: int, jitter: float) -> ObjectSpec:
    """Place an object with its centre within ±`jitter` px of the image centre (kept inside)."""
    base = (size - spec.extent) / 2.0
    j = int(round(jitter))
    lo, hi = MARGIN, size - spec.extent - MARGIN
    x = int(np.clip(round(base) + randint(rng, -j, j + 1), lo, hi))
    y = int(np.clip(round(base) + randint(rng, -j, j + 1), lo, hi))
    return spec.moved(x, y)


# ---------------------------------------------------------------------------------------------- motion


def bounce(start: int, velocity: int, t: int, lo: int, hi: int) -> int:
    """Position at time t of a point moving at `velocity` px/frame from `start`, reflected at lo and hi."""
    span = hi - lo
    if span <= 0:
        return lo
    period = 2 * span
    q = (start - lo + velocity * t) % period
    return lo + (q if q <= span else period - q)


def trajectory(spec: ObjectSpec, velocity: tuple[int, int], n_frames: int, size: int) -> list[ObjectSpec]:
    """The object at each frame, moving in a straight line and bouncing off the image borders."""
    lo, hi = MARGIN, size - spec.extent - MARGIN
    return [spec.moved(bounce(spec.x0, velocity[0], t, lo, hi), bounce(spec.y0, velocity[1], t, lo, hi))
            for t in range(n_frames)]


def tracks_clear(tracks: Sequence[Sequence[ObjectSpec]], present: Sequence[Sequence[bool]],
                 overlap: bool = False) -> bool:
    """Whether no two objects collide in any frame where both are present."""
    n_frames = len(tracks[0]) if tracks else 0
    for t in range(n_frames):
        here = [tr[t] for tr, pr in zip(tracks, present) if pr[t]]
        for i in range(len(here)):
            for j in range(i + 1, len(here)):
                if not clear_of(here[i], here[j], overlap):
                    return False
    return True
