"""Image-only processors for families whose stock processor cannot be built without torchvision.

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
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor
from transformers.processing_utils import ProcessorMixin


class _StockNameMixin:
    """Save under the stock processor's class name, so the folder stays a standard checkpoint folder."""

    stock_class_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()  # type: ignore[misc]
        out["processor_class"] = self.stock_class_name
        return out


class Qwen2VLImageOnlyProcessor(_StockNameMixin, Qwen2VLProcessor):
    """`Qwen2VLProcessor` without the video processor (images and text only)."""

    stock_class_name = "Qwen2VLProcessor"

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class Qwen2_5_VLImageOnlyProcessor(_StockNameMixin, Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` without the video processor (images and text only)."""

    stock_class_name = "Qwen2_5_VLProcessor"

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class SmolVLMImageOnlyProcessor(_StockNameMixin, SmolVLMProcessor):
    """`SmolVLMProcessor` without the video processor and without the `num2words` requirement (videos only)."""

    stock_class_name = "SmolVLMProcessor"

    def __init__(
        self,
        image_processor: Any,
        tokenizer: Any,
        image_seq_len: int = 169,
        chat_template: str | None = None,
        **kwargs: Any,
    ):
        # Same attributes as SmolVLMProcessor.__init__, minus the num2words check and the video processor.
        self.fake_image_token = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
        self.image_token = getattr(tokenizer, "image_token", "<image>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.end_of_utterance_token = getattr(tokenizer, "end_of_utterance_token", "<end_of_utterance>")
        self.global_image_token = getattr(tokenizer, "global_image_token", "<global-img>")
        self.image_seq_len = image_seq_len
        self.video_token = getattr(tokenizer, "video_token", "<video>")
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def apply_chat_template(self, conversation: Any, chat_template: str | None = None, **kwargs: Any) -> Any:
        # The stock override reads video defaults from the video processor; images need none of that.
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)


PROCESSOR_CLASSES: dict[str, type[ProcessorMixin]] = {
    "qwen2_vl": Qwen2VLImageOnlyProcessor,
    "qwen2_5_vl": Qwen2_5_VLImageOnlyProcessor,
    "smolvlm": SmolVLMImageOnlyProcessor,
}
"""model_type -> the processor class to load instead of `AutoProcessor`."""


def load_processor(path: str | os.PathLike[str], model_type: str | None = None, **kwargs: Any) -> Any:
    """Load the processor saved in `path` (a folder or hub id) for a model of `model_type`.

    Families listed in `PROCESSOR_CLASSES` get their image-only class; others go through `AutoProcessor`.
    `kwargs` go to `from_pretrained` (e.g. `local_files_only=True`).
    """
    cls = PROCESSOR_CLASSES.get(model_type or "")
    if cls is not None:
        return cls.from_pretrained(path, **kwargs)
    return AutoProcessor.from_pretrained(path, **kwargs)


__all__ = [
    "PROCESSOR_CLASSES",
    "Qwen2VLImageOnlyProcessor",
    "Qwen2_5_VLImageOnlyProcessor",
    "SmolVLMImageOnlyProcessor",
    "load_processor",
]
