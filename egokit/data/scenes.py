"""What a ShapesWorld scene is: the image, its objects with masks and boxes, its caption and questions.

Ground truth is exact: objects are drawn with hard edges and flat colours, so a mask is exactly the set
of pixels that show the object (its visible pixels when objects overlap), and a box is the bounding box
of the mask, `(x0, y0, x1, y1)` with `x1`/`y1` exclusive.

JSON export (`Scene.to_dict`): masks are run-length encoded in row-major (C) order, starting with a run
of `False` (possibly of length 0): `{"size": [H, W], "counts": [n_false, n_true, n_false, ...]}`.
`rle_decode` turns that back into a boolean array. The image itself is not in the dict (it is a PNG).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from egokit.errors import InputError

#: Roles of caption words. `mark` words describe a personal concept's mark ("with a white ring").
WORD_ROLES: tuple[str, ...] = ("colour", "shape", "pattern", "size", "relation", "mark", "name", "function")


# ---------------------------------------------------------------------------------------------- masks


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """Run-length encode a boolean (H, W) mask in row-major order; the first run counts `False` pixels."""
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode `rle_encode`'s output back into a boolean (H, W) mask."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w:
        raise InputError(f"RLE counts sum to {int(counts.sum())}, expected {h * w} for a {h}x{w} mask")
    values = np.arange(counts.size) % 2 == 1
    return np.repeat(values, counts).reshape(h, w)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box `(x0, y0, x1, y1)` of a boolean mask, exclusive ends; `(0, 0, 0, 0)` when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, 0, 0)
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


# ---------------------------------------------------------------------------------------------- objects


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One object of a scene.

    shape, color, pattern, size: attribute words (`size` is the class, "small" or "large").
    center:  (x, y) centre of the drawn shape's extent, in pixels (floats).
    box:     bounding box of the visible pixels, (x0, y0, x1, y1), ends exclusive.
    mask:    (H, W) bool, the pixels where this object is visible.
    extent:  side of the square the shape was drawn in, in pixels.
    color2:  second colour of a two-tone object (personal concepts), else None.
    halves:  how a two-tone object is split ("left-right": main colour on the left; "top-bottom").
    mark, mark_color: the distinctive mark of a concept-like object (e.g. "ring", "white"), else None.
    name:    the concept's name token when this object *is* a personal concept, else None.
    track:   identity of the object across the frames of a video, else None.
    """

    shape: str
    color: str
    pattern: str
    size: str
    center: tuple[float, float]
    box: tuple[int, int, int, int]
    mask: np.ndarray = field(repr=False)
    extent: int = 0
    color2: str | None = None
    halves: str | None = None
    mark: str | None = None
    mark_color: str | None = None
    name: str | None = None
    track: int | None = None

    @property
    def colors(self) -> tuple[str, ...]:
        """Every object colour it shows: `(color,)` or `(color, color2)`."""
        return (self.color,) if self.color2 is None else (self.color, self.color2)

    @property
    def area(self) -> int:
        """Number of visible pixels."""
        return int(self.mask.sum())

    def values(self) -> frozenset[str]:
        """Its attribute values as one set (shape, colours, pattern, size), used by holdout rules."""
        return frozenset((self.shape, *self.colors, self.pattern, self.size))

    def to_dict(self, masks: bool = True) -> dict[str, Any]:
        """JSON-able ground truth; the mask as row-major RLE (see the module docstring) unless `masks=False`."""
        d: dict[str, Any] = {
            "shape": self.shape,
            "color": self.color,
            "pattern": self.pattern,
            "size": self.size,
            "center": [float(self.center[0]), float(self.center[1])],
            "box": [int(v) for v in self.box],
            "extent": int(self.extent),
            "area": self.area,
            "color2": self.color2,
            "halves": self.halves,
            "mark": self.mark,
            "mark_color": self.mark_color,
            "name": self.name,
            "track": self.track,
        }
        if masks:
            d["mask_rle"] = rle_encode(self.mask)
        return d


# ---------------------------------------------------------------------------------------------- text


@dataclass(frozen=True)
class CaptionWord:
    """One word of a caption with its role (one of `WORD_ROLES`) and the object(s) it refers to.

    ref:  index (in `Scene.objects`) of the object the word describes; for a relation word, the subject.
    ref2: for a relation word, the object it is compared with ("a red circle left of a blue square":
          "left" has ref = the circle, ref2 = the square); else None.
    """

    text: str
    role: str
    ref: int | None = None
    ref2: int | None = None


@dataclass(frozen=True)
class QA:
    """A question about a scene with its answer; kind is one of color, shape, pattern, count, position,
    yesno, coverage. `ref` is the object the question is about, when there is one."""

    question: str
    answer: str
    kind: str
    ref: int | None = None

    @property
    def question_words(self) -> list[str]:
        return self.question.split()

    @property
    def answer_words(self) -> list[str]:
        return self.answer.split()

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "kind": self.kind, "ref": self.ref}


# ---------------------------------------------------------------------------------------------- scenes


@dataclass(frozen=True, eq=False)
class Scene:
    """A ShapesWorld image with its complete ground truth.

    image:          (H, W, 3) uint8 RGB.
    objects:        the objects, in caption order.
    caption_tokens: the caption as structured words (`CaptionWord`); `caption` is their text joined by
                    spaces, punctuation included as separate tokens ("a small red solid circle .").
    questions:      questions with answers (`QA`).
    patch:          the default patch side for `patch_labels`.
    seed, split, index, source: where the scene comes from ("scene", "with", "reference", "query:positive",
                    "multi_concept", "video", ...); with these the generator reproduces it.
    contains:       names of the personal concepts present in the image.
    frame:          the frame number in a video, else None.
    """

    image: np.ndarray = field(repr=False)
    objects: list[SceneObject]
    caption_tokens: tuple[CaptionWord, ...]
    questions: list[QA]
    patch: int = 8
    seed: int = 0
    split: str = "train"
    index: int = 0
    source: str = "scene"
    contains: frozenset[str] = frozenset()
    frame: int | None = None

    # -- caption views ---------------------------------------------------------------------------

    @property
    def caption(self) -> str:
        """The caption as one string of space-separated words."""
        return " ".join(w.text for w in self.caption_tokens)

    @property
    def caption_words(self) -> list[str]:
        return [w.text for w in self.caption_tokens]

    @property
    def caption_roles(self) -> list[str]:
        return [w.role for w in self.caption_tokens]

    @property
    def caption_refs(self) -> list[int | None]:
        return [w.ref for w in self.caption_tokens]

    @property
    def personal_caption(self) -> str:
        """The caption with each personal concept's noun phrase replaced by its name ("bix left of a ...")."""
        return " ".join(w.text for w in personalize(self.caption_tokens, self.objects))

    def word_boxes(self) -> list[tuple[int, int, int, int] | None]:
        """For each caption word, the box of the object it belongs to: a noun-phrase word gets its object's
        box, a relation word the union of both objects' boxes, other words ("of", ".") None."""
        out: list[tuple[int, int, int, int] | None] = []
        for w in self.caption_tokens:
            if w.ref is None:
                out.append(None)
            elif w.role == "relation" and w.ref2 is not None:
                a, b = self.objects[w.ref].box, self.objects[w.ref2].box
                out.append((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
            else:
                out.append(tuple(self.objects[w.ref].box))  # type: ignore[arg-type]
        return out

    # -- geometry --------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Image side in pixels."""
        return int(self.image.shape[0])

    def coverage(self, obj: int) -> float:
        """Percentage (0–100) of the image covered by object `obj`'s visible pixels."""
        return 100.0 * self.objects[obj].area / float(self.image.shape[0] * self.image.shape[1])

    def patch_labels(self, patch: int | None = None, min_cover: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-patch ground truth on a grid of `patch`×`patch` pixel cells (default: the scene's patch).

        Returns `(labels, coverage)`: `labels` is an (rows, cols) int array with the index of the object
        covering the most of each patch, or −1 for background; `coverage` is (n_objects, rows, cols) float,
        the fraction of each patch covered by each object's visible pixels.
        With `min_cover=None` the label is a plurality vote between background and the objects (an object
        wins ties); with a float, the most-covering object is the label when it covers at least `min_cover`.
        """
        p = self.patch if patch is None else int(patch)
        h, w = self.image.shape[:2]
        if p < 1 or h % p or w % p:
            raise InputError(f"patch {p} does not tile a {h}x{w} image: use a divisor of the image side")
        rows, cols = h // p, w // p
        if not self.objects:
            return np.full((rows, cols), -1, dtype=np.int64), np.zeros((0, rows, cols), dtype=np.float64)
        masks = np.stack([o.mask for o in self.objects]).astype(np.float64)
        cover = masks.reshape(len(self.objects), rows, p, cols, p).mean(axis=(2, 4))
        best = cover.argmax(axis=0)
        best_cover = cover.max(axis=0)
        if min_cover is None:
            background = 1.0 - cover.sum(axis=0)
            is_object = (best_cover > 0) & (best_cover >= background - 1e-12)
        else:
            is_object = (best_cover > 0) & (best_cover >= float(min_cover))
        labels = np.where(is_object, best, -1).astype(np.int64)
        return labels, cover

    # -- export ----------------------------------------------------------------------------------

    def to_dict(self, masks: bool = True) -> dict[str, Any]:
        """JSON-able ground truth (no image): objects (masks as row-major RLE unless `masks=False`; boxes
        always kept), caption with word roles and references, questions, provenance."""
        return {
            "seed": int(self.seed),
            "split": self.split,
            "index": int(self.index),
            "source": self.source,
            "frame": self.frame,
            "size": [int(self.image.shape[0]), int(self.image.shape[1])],
            "patch": int(self.patch),
            "caption": self.caption,
            "caption_words": self.caption_words,
            "caption_roles": self.caption_roles,
            "caption_refs": self.caption_refs,
            "caption_refs2": [w.ref2 for w in self.caption_tokens],
            "personal_caption": self.personal_caption,
            "questions": [q.to_dict() for q in self.questions],
            "contains": sorted(self.contains),
            "objects": [o.to_dict(masks=masks) for o in self.objects],
        }

    def png_bytes(self, scale: int = 1) -> bytes:
        """The image as PNG bytes (no metadata, so identical scenes give identical bytes), upscaled by
        `scale` with nearest-neighbour so pixels stay sharp."""
        from PIL import Image

        img = self.image
        if scale > 1:
            img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png_bytes(scale=max(1, 256 // max(1, self.size)))

    def __repr__(self) -> str:
        return (f"Scene(split={self.split!r}, index={self.index}, source={self.source!r}, "
                f"objects={len(self.objects)}, caption={self.caption!r})")


def stack_images(scenes: Sequence[Scene]) -> np.ndarray:
    """Stack scene images into one (N, H, W, 3) uint8 array."""
    if not scenes:
        raise InputError("no scenes to stack: pass at least one scene")
    return np.stack([s.image for s in scenes])


def personalize(tokens: Sequence[CaptionWord], objects: Sequence[SceneObject]) -> list[CaptionWord]:
    """Replace the noun phrase of every named object (a personal concept) by its name token."""
    out: list[CaptionWord] = []
    for w in tokens:
        name = objects[w.ref].name if (w.ref is not None and w.role != "relation") else None
        if name is None:
            out.append(w)
        elif not (out and out[-1].role == "name" and out[-1].ref == w.ref):
            out.append(CaptionWord(name, "name", w.ref))
    return out
