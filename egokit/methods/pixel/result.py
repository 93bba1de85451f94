"""`PixelResult`: what `egokit.pixel.localize` and `egokit.pixel.refer` return, and how it is saved and shown.

Every answer token has two predicted points (box corners) in the original image's pixels; a word's box is
the min/max over its tokens' points and its point is that box's centre. `box`, the referred box of `refer`,
is the two corners the head predicts at one position (`box_points`): the expression's last token
(PixelLLM's rule) or, when asked, the answer position (not the paper's rule; `extra["readout"]` says which).
Without `box_points` (a caption) `box` is the min/max over every token's points.

A `egokit.results.Result`. Files: one `.safetensors` file holds the tensors (points, token ids, the image as
uint8) and, in its metadata, a JSON document with the text; written atomically, read back without pickle.
A damaged or foreign file raises `MemoryFileError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from egokit.errors import InputError
from egokit.methods.pixel.head import box_from_points
from egokit.results import Result

FILE_KIND = "egokit.pixel_result"
FILE_VERSION = 1


@dataclass(repr=False)
class PixelResult(Result):
    """Per-word points and boxes of an answer (a generated caption, or a teacher-forced expression).

    kind:         "caption" (`localize`) or "refer" (`refer`).
    prompt:       the question the answer follows.
    answer:       the answer text; `words` are its whitespace-separated words.
    tokens, token_ids, token_word: the answer's tokens and the word each belongs to (-1: none).
    token_points: (T, 2, 2) the two predicted points (x, y) of each token, in pixels of `image`.
    image_size:   (height, width) of the original image; `image` is it as (H, W, 3) uint8 (None if not kept).
    box_points:   (2, 2) the two corners that make `box` (refer), in pixels; None: the union of all tokens.
    """

    FILE_KIND: ClassVar[str] = FILE_KIND
    FILE_VERSION: ClassVar[int] = FILE_VERSION
    FILE_WHAT: ClassVar[str | None] = "pixel result"

    kind: str
    prompt: str
    answer: str
    words: list[str]
    tokens: list[str]
    token_ids: list[int]
    token_word: list[int]
    token_points: torch.Tensor
    image_size: tuple[int, int]
    image: np.ndarray | None = None
    model_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    box_points: torch.Tensor | None = None

    # -- derived -------------------------------------------------------------------------------------
    @property
    def token_boxes(self) -> torch.Tensor:
        """(T, 4) box (x0, y0, x1, y1) of each token: min/max of its two points."""
        return box_from_points(self.token_points)

    @property
    def word_boxes(self) -> torch.Tensor:
        """(W, 4) box of each word: min/max over the points of its tokens (NaN for a word with none)."""
        out = torch.full((len(self.words), 4), float("nan"))
        for w in range(len(self.words)):
            rows = [t for t, k in enumerate(self.token_word) if k == w]
            if rows:
                out[w] = box_from_points(self.token_points[rows].reshape(-1, 2))
        return out

    @property
    def word_points(self) -> torch.Tensor:
        """(W, 2) point (x, y) of each word: the centre of its box."""
        b = self.word_boxes
        return torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], dim=-1)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The answer's box: the two corners `box_points` (the referred object's box for `refer`), or the
        min/max over every token's points when there are none."""
        if self.box_points is not None:
            return tuple(float(v) for v in box_from_points(self.box_points.reshape(-1, 2)))  # type: ignore[return-value]
        if not len(self.tokens):
            raise InputError("the answer has no tokens, so it has no box")
        return tuple(float(v) for v in box_from_points(self.token_points.reshape(-1, 2)))  # type: ignore[return-value]

    def word_index(self, word: int | str) -> int:
        """The index of a word given by index or by text (its first occurrence)."""
        if isinstance(word, (int, np.integer)):
            if not -len(self.words) <= int(word) < len(self.words):
                raise InputError(f"word {word} does not exist: the answer has {len(self.words)} words")
            return int(word) % len(self.words)
        low = [w.lower() for w in self.words]
        if word.strip().lower() not in low:
            raise InputError(f"{word!r} is not in the answer; its words are: {' '.join(self.words)}")
        return low.index(word.strip().lower())

    def point(self, word: int | str) -> tuple[float, float]:
        """(x, y) of a word, in pixels of the image."""
        return tuple(float(v) for v in self.word_points[self.word_index(word)])  # type: ignore[return-value]

    def word_box(self, word: int | str) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of a word, in pixels of the image."""
        return tuple(float(v) for v in self.word_boxes[self.word_index(word)])  # type: ignore[return-value]

    # -- display -------------------------------------------------------------------------------------
    def to_image(self, word: int | str | None = None) -> Image.Image:
        """The image with every word's point (or one word's point and box) over the coloured answer."""
        from egokit.methods.pixel.render import result_picture

        return result_picture(self, None if word is None else self.word_index(word))

    def __repr__(self) -> str:
        if self.kind == "refer":
            return f"PixelResult(refer {self.answer!r} → box {tuple(round(v, 1) for v in self.box)})"
        pts = ", ".join(f"{w}@({x:.0f},{y:.0f})" for w, (x, y) in zip(self.words, self.word_points.tolist()))
        return f"PixelResult({pts})"

    # -- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary: per word its point and box (pixels), and the referred box."""
        words = [{"word": w, "point": [round(v, 2) for v in p], "box": [round(v, 2) for v in b]}
                 for w, p, b in zip(self.words, self.word_points.tolist(), self.word_boxes.tolist())]
        out: dict[str, Any] = {"kind": self.kind, "prompt": self.prompt, "answer": self.answer, "words": words,
                               "image_size": list(self.image_size), "model": self.model_name}
        if self.tokens:
            out["box"] = [round(v, 2) for v in self.box]
        if self.kind == "refer" and "readout" in self.extra:
            out["readout"] = self.extra["readout"]
        return out

    def _meta(self) -> dict[str, Any]:
        return {"result_kind": self.kind, "prompt": self.prompt,
                "answer": self.answer, "words": list(self.words), "tokens": list(self.tokens),
                "token_word": list(self.token_word), "image_size": list(self.image_size),
                "model_name": self.model_name, "extra": self.extra}

    def _file_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"token_points": self.token_points.float(),
                   "token_ids": torch.tensor(self.token_ids, dtype=torch.long)}
        if self.image is not None:
            tensors["image"] = torch.from_numpy(np.array(self.image, dtype=np.uint8, copy=True))
        if self.box_points is not None:
            tensors["box_points"] = self.box_points.float().reshape(2, 2).contiguous()
        return tensors

    def _file_meta(self) -> dict[str, Any]:
        return self._meta()

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> PixelResult:
        image = tensors.get("image")
        points = tensors["token_points"]
        if points.dim() != 3 or points.shape[0] != len(meta["tokens"]):
            raise ValueError(f"an inconsistent pixel result: {tuple(points.shape)} token points for "
                             f"{len(meta['tokens'])} tokens")
        return cls(kind=str(meta["result_kind"]), prompt=str(meta["prompt"]), answer=str(meta["answer"]),
                   words=[str(w) for w in meta["words"]], tokens=[str(t) for t in meta["tokens"]],
                   token_ids=tensors["token_ids"].tolist(), token_word=[int(i) for i in meta["token_word"]],
                   token_points=points, image_size=(int(meta["image_size"][0]), int(meta["image_size"][1])),
                   image=None if image is None else image.numpy(), model_name=str(meta.get("model_name", "")),
                   extra=dict(meta.get("extra", {})), box_points=tensors.get("box_points"))


__all__ = ["FILE_KIND", "FILE_VERSION", "PixelResult"]
