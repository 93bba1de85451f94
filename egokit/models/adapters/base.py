"""What every model family's adapter knows: where the parts are, and where the visual tokens are.

An adapter wraps one loaded transformers model and its processor. Adding a family is one small subclass
of `Adapter` registered with `@register_adapter`, plus a tiny-config test (see `egokit.models.tiny`).
Nothing here hard-codes token counts: the layout of visual tokens is derived from the config and from
what the processor produced (`input_ids`, `image_grid_thw`, `image_sizes`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class ImageTokens:
    """Where one image's visual tokens sit in the token sequence and in the picture.

    positions:     (N,) long — sequence positions (in `input_ids` of one batch row) of the image's patch tokens,
                   in the order the model's image features fill them. Tokens with no pixel box (row
                   separators such as LLaVA-OneVision's image_newline) are left out.
    boxes:         (N, 4) float — pixel box (x0, y0, x1, y1) of each token in the *original* image, x1/y1
                   exclusive. Tiles and crops may overlap the base view; heatmaps average where they overlap.
    feature_index: (N,) long — index of each token into the image's projector output (the rows that fill
                   the image-token positions, in order), so `features[feature_index]` are these tokens.
    grid:          (rows, cols) of the base grid: the first rows*cols tokens, in raster order, when
                   `len(positions) >= rows*cols` (any tiles follow).
    image_size:    (height, width) of the original image in pixels.
    """

    positions: torch.Tensor
    boxes: torch.Tensor
    feature_index: torch.Tensor
    grid: tuple[int, int]
    image_size: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.positions.numel())


class Adapter:
    """Base class. Subclasses set `family`, `model_types`, `parts` and implement the abstract methods.

    parts: the attention stacks the capture engine can reach, e.g. ("language", "vision") for a VLM or
    ("text", "vision") for CLIP; `default_part` is used when a caller names no part.
    """

    family: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()
    parts: ClassVar[tuple[str, ...]] = ("language", "vision")
    default_part: ClassVar[str] = "language"
    is_generative: ClassVar[bool] = True

    def __init__(self, model: nn.Module, processor: Any = None) -> None:
        self.model = model
        self.processor = processor

    # -- structure -------------------------------------------------------------------------------------
    def attention_modules(self, part: str | None = None) -> list[nn.Module]:
        """The attention modules of one stack, index = layer number."""
        raise NotImplementedError

    def num_layers(self, part: str | None = None) -> int:
        return len(self.attention_modules(part))

    # -- inputs ----------------------------------------------------------------------------------------
    def prompt(self, question: str, n_images: int = 1) -> str:
        """The text to feed the processor for `question` about `n_images` images (chat template applied)."""
        raise NotImplementedError

    def prepare(self, images: list[Any] | None, text: str | list[str], **kwargs: Any) -> Any:
        """Run the processor and move the result to the model's device. Returns a BatchFeature/dict."""
        raise NotImplementedError

    def visual_layout(self, inputs: Any, batch_index: int = 0) -> list[ImageTokens]:
        """One `ImageTokens` per image in batch row `batch_index`, in the order the images appear."""
        raise NotImplementedError

    def image_features(self, inputs: Any) -> list[torch.Tensor]:
        """Projector outputs (the language model's input embeddings) per image: list of (N_i, D)."""
        raise NotImplementedError

    def model_inputs(self, inputs: Any) -> dict[str, Any]:
        """Keyword arguments for `model(**...)` from prepared inputs (adds what a family needs)."""
        return dict(inputs)


ADAPTERS: dict[str, type[Adapter]] = {}


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make an adapter available for its `model_types`."""
    for mt in cls.model_types:
        ADAPTERS[mt] = cls
    return cls
