"""`MisalignmentResult`: what `egokit.misalign.score` returns, and how it is saved and shown.

Flagged words, phrases, the most negative word and F-CLIPScore are derived from the per-word scores and
ε on the fly, so `with_eps(eps)` re-flags without touching the model (the widget's ε slider uses it).

Files (`save` / `load`, from `egokit.results.Result`): one ``.safetensors`` file holds the tensors (word
and token scores, heatmaps, patch boxes, the image as uint8) and, in its metadata, a JSON document with
everything else. Written atomically (a temp file in the same folder, then a rename); read back without
pickle. A damaged or foreign file raises `MemoryFileError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from egokit.methods.misalign.words import eligible_mask, flag_below, most_negative, phrases
from egokit.results import Result

FILE_KIND = "egokit.misalignment"
FILE_VERSION = 1


@dataclass(repr=False)
class MisalignmentResult(Result):
    """Per-word misalignment of one caption against one image.

    caption:       the caption (template excluded; cut to the encoder's limit if truncated).
    words:         its whitespace-separated words; `scores[i]` is word i's attribution r_i (mean over
                   its sub-word tokens). Negative: the word lowers the image–caption similarity.
    similarity:    s = cos(image embedding, text embedding of template + caption).
    eps:           words with r < eps are flagged (the multi-error rule).
    variant:       "signed" (CLIP4DM), "clamped", "positive_only", "chefer" or "captum".
    template:      the text put in front of the caption ("" for none).
    layers:        the text layers attributed (gradient × attention variants).
    tokens, token_scores, token_word: the prompt's tokens, their scores and the word each belongs to
                   (-1: template, special or padding token).
    heatmaps:      (n_words, N) signed map per word over the N patch tokens, or None; `boxes` (N, 4) are
                   the patches' pixel boxes (x0, y0, x1, y1) in `image`, `grid` their (rows, cols).
    image:         (H, W, 3) uint8 image the caption was scored against (None if not kept).
    dropped_words: words cut off to fit the text encoder (only with truncate=True).
    """

    FILE_KIND: ClassVar[str] = FILE_KIND
    FILE_VERSION: ClassVar[int] = FILE_VERSION
    FILE_WHAT: ClassVar[str | None] = "misalignment result"

    caption: str
    words: list[str]
    scores: torch.Tensor
    similarity: float
    eps: float
    variant: str = "signed"
    template: str = ""
    layers: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    token_scores: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    token_word: list[int] = field(default_factory=list)
    heatmaps: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    grid: tuple[int, int] | None = None
    image: np.ndarray | None = None
    dropped_words: list[str] = field(default_factory=list)
    model_name: str = ""

    # -- derived -------------------------------------------------------------------------------------
    @property
    def eligible(self) -> list[bool]:
        """Words that may be flagged (content words with a score; punctuation never is)."""
        return eligible_mask(self.words, self.scores).tolist()

    @property
    def flagged(self) -> list[int]:
        """Indices of the words with score < eps."""
        return flag_below(self.scores, eligible_mask(self.words, self.scores), self.eps)

    @property
    def flagged_words(self) -> list[str]:
        return [self.words[i] for i in self.flagged]

    @property
    def phrases(self) -> list[dict[str, Any]]:
        """Runs of adjacent flagged words: ``{"start", "end", "text"}`` (end exclusive)."""
        return phrases(self.flagged, self.words)

    @property
    def most_negative(self) -> int | None:
        """Index of the lowest-scoring word (the single-foil answer)."""
        return most_negative(self.scores, eligible_mask(self.words, self.scores))

    @property
    def clipscore(self) -> float:
        """CLIPScore = 2.5 · max(s, 0)."""
        return 2.5 * max(self.similarity, 0.0)

    @property
    def fclipscore(self) -> float:
        """F-CLIPScore for multi-error captions: (1 − max(s, 0)) · Σ over flagged words (r < ε) of r; ≤ 0, and
        0 when no word is flagged. (1 − max(s, 0)) = 1 − CLIPScore / 2.5, as in the official code.)"""
        total = float(sum(float(self.scores[i]) for i in self.flagged))
        return (1.0 - max(self.similarity, 0.0)) * total

    @property
    def fclipscore_most_negative(self) -> float:
        """F-CLIPScore for single-error captions (the paper's FOIL setting): (1 − max(s, 0)) · r of the most
        negative word (no threshold, so every caption gets a graded score)."""
        i = self.most_negative
        return 0.0 if i is None else (1.0 - max(self.similarity, 0.0)) * float(self.scores[i])

    def with_eps(self, eps: float) -> MisalignmentResult:
        """The same scores flagged at another ε (no model call)."""
        return replace(self, eps=float(eps))

    def word_scores(self) -> dict[str, float]:
        """{word: score}; a repeated word keeps its first occurrence's score."""
        out: dict[str, float] = {}
        for w, s in zip(self.words, self.scores.tolist()):
            out.setdefault(w, s)
        return out

    # -- display -------------------------------------------------------------------------------------
    def to_image(self, word: int | str | None = None) -> Image.Image:
        """The image with a word's heatmap (default: the most negative word) over the coloured caption."""
        from egokit.methods.misalign.render import result_picture

        return result_picture(self, word)

    def heatmap_image(self, word: int | str | None = None) -> Image.Image:
        """The image with one word's heatmap (by index or text)."""
        from egokit.methods.misalign.render import heatmap_picture

        return heatmap_picture(self, word)

    def _repr_html_(self) -> str:
        from egokit.methods.misalign.render import caption_html

        return caption_html(self)

    def __repr__(self) -> str:
        marked = " ".join(f"[{w}]" if i in set(self.flagged) else w for i, w in enumerate(self.words))
        return (f"MisalignmentResult({marked!r}, s={self.similarity:.3f}, F-CLIPScore={self.fclipscore:.3g}, "
                f"variant={self.variant!r})")

    # -- serialisation -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no image, no heatmaps)."""
        return {
            "caption": self.caption,
            "template": self.template,
            "words": list(self.words),
            "scores": [None if np.isnan(s) else s for s in self.scores.tolist()],
            "flagged": self.flagged,
            "flagged_words": self.flagged_words,
            "phrases": self.phrases,
            "most_negative": self.most_negative,
            "most_negative_word": None if self.most_negative is None else self.words[self.most_negative],
            "similarity": self.similarity,
            "clipscore": self.clipscore,
            "fclipscore": self.fclipscore,
            "fclipscore_most_negative": self.fclipscore_most_negative,
            "eps": self.eps,
            "variant": self.variant,
            "layers": list(self.layers),
            "dropped_words": list(self.dropped_words),
            "model": self.model_name,
        }

    def _file_meta(self) -> dict[str, Any]:
        return {
            "caption": self.caption, "words": list(self.words),
            "similarity": self.similarity, "eps": self.eps, "variant": self.variant, "template": self.template,
            "layers": list(self.layers), "tokens": list(self.tokens), "token_word": list(self.token_word),
            "grid": None if self.grid is None else list(self.grid), "dropped_words": list(self.dropped_words),
            "model_name": self.model_name,
        }

    def _file_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"scores": self.scores.float(), "token_scores": self.token_scores.float()}
        if self.heatmaps is not None:
            tensors["heatmaps"] = self.heatmaps.float()
        if self.boxes is not None:
            tensors["boxes"] = self.boxes.float()
        if self.image is not None:
            tensors["image"] = torch.from_numpy(np.array(self.image, dtype=np.uint8, copy=True))
        return tensors

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> MisalignmentResult:
        words = [str(w) for w in meta["words"]]
        scores = tensors["scores"]
        if scores.shape != (len(words),):
            raise ValueError(f"{scores.shape[0] if scores.dim() else 0} scores for {len(words)} words")
        heat = tensors.get("heatmaps")
        if heat is not None and heat.shape[0] != len(words):
            raise ValueError("one heatmap per word expected")
        image = tensors.get("image")
        return cls(
            caption=str(meta["caption"]), words=words, scores=scores, similarity=float(meta["similarity"]),
            eps=float(meta["eps"]), variant=str(meta["variant"]), template=str(meta["template"]),
            layers=[int(x) for x in meta["layers"]], tokens=[str(t) for t in meta["tokens"]],
            token_scores=tensors["token_scores"], token_word=[int(x) for x in meta["token_word"]],
            heatmaps=heat, boxes=tensors.get("boxes"),
            grid=None if meta.get("grid") is None else (int(meta["grid"][0]), int(meta["grid"][1])),
            image=None if image is None else image.numpy(), dropped_words=list(meta.get("dropped_words", [])),
            model_name=str(meta.get("model_name", "")),
        )


__all__ = ["FILE_KIND", "FILE_VERSION", "MisalignmentResult"]
