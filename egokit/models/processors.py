"""Loading processors, and the base of image-only processors for families whose stock processor cannot be
built without torchvision (the classes themselves live in their family's file and register here).

The stock `Qwen2VLProcessor`, `Qwen2_5_VLProcessor` and `SmolVLMProcessor` also own a *video* processor, and
video processors need torchvision (the SmolVLM one also needs `num2words`). The kit only feeds images, so
these subclasses take just `image_processor` and `tokenizer`; everything else (prompt expansion, chat
template, `mm_token_type_ids`) is the stock code.

They save like the stock processor: `processor_config.json` names the stock class (`Qwen2VLProcessor`, ...),
so a saved folder is an ordinary checkpoint folder that the stock processor also reads where torchvision is
installed. To load one here, pick the class by the model's `config.model_type`, not by the saved name:
`load_processor(folder, model_type)` does that and falls back to `AutoProcessor` for the other families.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import AutoProcessor
from transformers.processing_utils import ProcessorMixin


class StockNameMixin:
    """Save under the stock processor's class name, so the folder stays a standard checkpoint folder."""

    stock_class_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()  # type: ignore[misc]
        out["processor_class"] = self.stock_class_name
        return out


PROCESSOR_CLASSES: dict[str, type[ProcessorMixin]] = {}
"""model_type -> the processor class to load instead of `AutoProcessor` (each family's file registers its own)."""


def load_processor(path: str | os.PathLike[str], model_type: str | None = None, **kwargs: Any) -> Any:
    """Load the processor saved in `path` (a folder or hub id) for a model of `model_type`.

    Families listed in `PROCESSOR_CLASSES` get their image-only class; others go through `AutoProcessor`.
    `kwargs` go to `from_pretrained` (e.g. `local_files_only=True`).
    """
    cls = PROCESSOR_CLASSES.get(model_type or "")
    if cls is not None:
        return cls.from_pretrained(path, **kwargs)
    return AutoProcessor.from_pretrained(path, **kwargs)


__all__ = ["PROCESSOR_CLASSES", "StockNameMixin", "load_processor"]
