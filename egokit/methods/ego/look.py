"""One reference view as Ego sees it: the description's words, their attention to every visual token, and
the view's projector outputs — everything token selection needs, computed once.

`look_at_reference` runs one teacher-forced forward over [view, describe prompt, description] with the
capture engine recording the description rows × the view's visual columns of the chosen language
layers (all by default). `ReferenceLook.scores(...)` then reduces that to one score per visual token for
any choice of keywords, layers and aggregation without touching the model again — `remember` uses it
once, the `KeywordPicker` widget on every toggle. It is a result (`egokit.results.Result`): it saves to
one file and reads back without the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from egokit.capture.aggregate import aggregate as reduce_attention
from egokit.errors import InputError
from egokit.methods.ego.keywords import Word, group_words
from egokit.models.context import tokenizer_of
from egokit.results import Result


@dataclass(repr=False)
class ReferenceLook(Result):
    """A reference view's description and its keyword→visual attention.

    description: the text teacher-forced after the describe prompt.
    words:       its words (punctuation excluded); `keyword[i]` says whether word i is a keyword.
    attentions:  (L, H, T, N) — rows = description tokens, columns = the view's visual tokens.
    layers:      language layers of the L axis.
    features:    (N, D) projector outputs of the view's visual tokens (layout order).
    boxes, grid: the tokens' pixel boxes (N, 4) and the token grid (rows, cols).
    image:       (H, W, 3) uint8 view.
    tokens:      the description's token strings.
    """

    FILE_KIND: ClassVar[str] = "egokit.ego.reference_look"
    FILE_VERSION: ClassVar[int] = 1
    FILE_WHAT: ClassVar[str | None] = "Ego reference look"

    description: str
    words: list[Word]
    keyword: list[bool]
    attentions: torch.Tensor
    layers: list[int]
    features: torch.Tensor
    boxes: torch.Tensor
    grid: tuple[int, int]
    image: np.ndarray | None
    tokens: list[str]

    @property
    def n_tokens(self) -> int:
        return int(self.attentions.shape[-1])

    @property
    def keywords(self) -> list[str]:
        return [w.text for w, k in zip(self.words, self.keyword) if k]

    def rows(self, words: Sequence[int | str] | None = None) -> list[int]:
        """Token rows of the chosen words (indices into `words` or their texts; default: the keywords)."""
        if words is None:
            chosen = [i for i, k in enumerate(self.keyword) if k]
        else:
            texts = [w.text.lower() for w in self.words]
            chosen = []
            for w in words:
                if isinstance(w, str):
                    if w.lower() not in texts:
                        raise InputError(f"{w!r} is not a word of the description {self.description!r}")
                    chosen.append(texts.index(w.lower()))
                else:
                    if not 0 <= int(w) < len(self.words):
                        raise InputError(f"word {w} does not exist: the description has {len(self.words)} words")
                    chosen.append(int(w))
        return [t for i in chosen for t in self.words[i].tokens]

    def scores(self, words: Sequence[int | str] | None = None, layers: Sequence[int] | None = None,
               aggregate: str = "mean") -> torch.Tensor:
        """(N,) score per visual token: `aggregate` ("mean" or "max") over the chosen layers, all heads and
        the chosen words' tokens. No chosen word gives zeros."""
        rows = self.rows(words)
        if not rows:
            return torch.zeros(self.n_tokens)
        idx = list(range(len(self.layers)))
        if layers is not None:
            missing = [layer for layer in layers if layer not in self.layers]
            if missing:
                raise InputError(f"layers {missing} were not captured; captured: {self.layers}")
            idx = [self.layers.index(layer) for layer in layers]
            if not idx:
                return torch.zeros(self.n_tokens)
        att = self.attentions[idx][:, None][:, :, :, rows]  # (L, 1, H, R, N)
        return reduce_attention(att, layers=aggregate, heads=aggregate, rows=aggregate)[0].cpu()

    def to_image(self, budget: float | int = 0.2, words: Sequence[int | str] | None = None,
                 layers: Sequence[int] | None = None, aggregate: str = "mean", target: int = 256) -> Any:
        from egokit.methods.ego.render import selection_picture
        from egokit.methods.ego.select import budget_k, top_k_raster

        s = self.scores(words, layers, aggregate)
        chosen = top_k_raster(s, budget_k(budget, self.n_tokens)).tolist()
        return selection_picture(self.image, s, self.boxes, chosen, target=target)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no tensors): the description, its words and keywords, layers and token grid."""
        return {"description": self.description, "words": [w.text for w in self.words],
                "word_tokens": [list(w.tokens) for w in self.words], "keyword": list(self.keyword),
                "keywords": self.keywords, "layers": list(self.layers), "n_tokens": self.n_tokens,
                "grid": list(self.grid), "tokens": list(self.tokens)}

    def _file_tensors(self) -> dict[str, torch.Tensor]:
        out = {"attentions": self.attentions.detach().float(), "features": self.features.detach(),
               "boxes": self.boxes.detach().float()}
        if self.image is not None:
            out["image"] = torch.from_numpy(np.array(self.image, dtype=np.uint8, copy=True))
        return out

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> ReferenceLook:
        words = [Word(str(t), tuple(int(i) for i in ids)) for t, ids in zip(meta["words"], meta["word_tokens"])]
        image = tensors["image"].numpy().copy() if "image" in tensors else None
        return cls(description=str(meta["description"]), words=words, keyword=[bool(k) for k in meta["keyword"]],
                   attentions=tensors["attentions"], layers=[int(x) for x in meta["layers"]],
                   features=tensors["features"], boxes=tensors["boxes"],
                   grid=(int(meta["grid"][0]), int(meta["grid"][1])), image=image,
                   tokens=[str(t) for t in meta["tokens"]])

    def __repr__(self) -> str:
        return (f"ReferenceLook(description={self.description!r}, keywords={self.keywords}, tokens={self.n_tokens}, "
                f"layers={self.layers})")


@torch.no_grad()
def look_at_reference(model: Any, image: Any, description: str, describe_prompt: str,
                      layers: Sequence[int] | None = None, keep_all: bool = False) -> ReferenceLook:
    """Teacher-force `description` after `describe_prompt` about `image`, capturing its rows (module doc)."""
    from egokit.capture.look import generate_and_look

    if not description or not description.strip():
        raise InputError("the description is empty: pass keywords or a description")
    adapter = model.adapter
    look = generate_and_look(model, image, describe_prompt, layers=None if layers is None else list(layers),
                             answer=description)
    words = [w for w in group_words(tokenizer_of(model), look.token_ids) if not w.is_punctuation]
    flags = [True if keep_all else w.is_keyword for w in words]
    if not any(flags):
        flags = [True] * len(words)
    inputs = adapter.prepare([image], adapter.prompt(describe_prompt, 1))
    layout = adapter.visual_layout(inputs, 0)[0]
    features = adapter.image_features(inputs)[0][layout.feature_index.to(model.device)].detach()
    cols = look.columns(0)
    return ReferenceLook(
        description=description, words=words, keyword=flags, attentions=look.attentions[..., cols].cpu(),
        layers=list(look.layers), features=features, boxes=layout.boxes.float().cpu(), grid=tuple(layout.grid),
        image=view_pixels(image), tokens=list(look.tokens),
    )


def view_pixels(image: Any) -> np.ndarray | None:
    """The image as (H, W, 3) uint8 for pictures (None when it cannot be read: display only)."""
    from egokit.data.images import load_image

    try:
        return np.asarray(load_image(image).convert("RGB"), dtype=np.uint8)
    except Exception:  # noqa: BLE001 - a picture for display only
        return None


__all__ = ["ReferenceLook", "look_at_reference", "view_pixels"]
