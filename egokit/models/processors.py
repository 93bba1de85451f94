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


def pil_image_processor(model_dir: str, class_name: str) -> tuple[type, bool]:
    """The PIL image processor class `class_name` of transformers' `models/<model_dir>` package, and whether
    transformers' own name for it is a placeholder.

    Imported from its own module: on some releases of the supported range (5.17, without torchvision) the
    package-level name of a PIL processor is a placeholder that asks for torchvision although the class never
    uses it, and `AutoImageProcessor` then cannot load a saved folder (see `PilImageProcessorLoading`).
    """
    import importlib

    import transformers

    names = (transformers, importlib.import_module(f"transformers.models.{model_dir}"))
    placeholder = any(getattr(getattr(where, class_name, None), "is_dummy", False) for where in names)
    module = importlib.import_module(f"transformers.models.{model_dir}.image_processing_pil_{model_dir}")
    return getattr(module, class_name), placeholder


class PilImageProcessorLoading:
    """`from_pretrained` that builds the image processor from its PIL class when transformers' auto loader
    only sees a placeholder for it (`pil_image_processor`); otherwise the stock loading."""

    pil_image_processor_class: type | None = None  # set by the family when its name is a placeholder

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **kwargs: Any) -> Any:
        if cls.pil_image_processor_class is None:
            return super().from_pretrained(path, **kwargs)  # type: ignore[misc]
        from transformers import AutoTokenizer

        processor_dict, instantiation_kwargs = cls.get_processor_dict(path, **kwargs)  # type: ignore[attr-defined]
        image_processor = cls.pil_image_processor_class.from_pretrained(path, **kwargs)  # type: ignore[attr-defined]
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        return cls.from_args_and_dict([image_processor, tokenizer], processor_dict, **instantiation_kwargs)  # type: ignore[attr-defined]


def load_processor(path: str | os.PathLike[str], model_type: str | None = None, **kwargs: Any) -> Any:
    """Load the processor saved in `path` (a folder or hub id) for a model of `model_type`.

    Families listed in `PROCESSOR_CLASSES` get their image-only class; others go through `AutoProcessor`.
    `kwargs` go to `from_pretrained` (e.g. `local_files_only=True`).
    """
    cls = PROCESSOR_CLASSES.get(model_type or "")
    if cls is not None:
        return cls.from_pretrained(path, **kwargs)
    return AutoProcessor.from_pretrained(path, **kwargs)


__all__ = ["PROCESSOR_CLASSES", "PilImageProcessorLoading", "StockNameMixin", "load_processor", "pil_image_processor"]
