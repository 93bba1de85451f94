"""A base for generative VLM adapters whose processor expands image placeholders in a chat prompt.

Qwen2-VL, Idefics3/SmolVLM and PaliGemma share how inputs are made: a chat prompt with one placeholder per
image, the processor call, the original image sizes recorded under `ORIGINAL_SIZES_KEY` (processors resize
and do not report what they started from; token boxes are given in original pixels), and the move to the
model's device. Subclasses implement structure and layout, and adapt `processor_call` / `plain_prompt`.
"""

from __future__ import annotations

from typing import Any

from egokit.errors import InputError
from egokit.models.adapters.base import Adapter
from egokit.models.adapters.common import (
    chat_prompt,
    group_images,
    load_images,
    sizes_tensor,
    to_model,
    without_private,
)
from egokit.models.geometry import ORIGINAL_SIZES_KEY, original_sizes


class VLMAdapter(Adapter):
    """Shared input handling; see the module docstring."""

    @property
    def base(self) -> Any:
        """The base model inside the generation head (`model.model`), where `get_image_features` lives."""
        return getattr(self.model, "model", self.model)

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def image_token_id(self) -> int:
        """The id of the placeholder token that image features replace."""
        token_id = getattr(self.config, "image_token_id", None)
        if token_id is None:
            token_id = getattr(self.config, "image_token_index", None)
        if token_id is None:
            raise InputError(f"{type(self.config).__name__} names no image token id")
        return int(token_id)

    @property
    def image_token(self) -> str:
        token = getattr(self.processor, "image_token", None)
        if token is None:
            token = self.processor.tokenizer.convert_ids_to_tokens(self.image_token_id)
        return str(token)

    # -- prompts ---------------------------------------------------------------------------------------
    def plain_prompt(self, question: str, n_images: int) -> str:
        """The prompt when there is no chat template: one placeholder per image, then the question."""
        return self.image_token * n_images + question

    def prompt(self, question: str, n_images: int = 1) -> str:
        return chat_prompt(self.processor, question, n_images, self.plain_prompt(question, n_images))

    # -- inputs ----------------------------------------------------------------------------------------
    def processor_call(self, groups: list[list[Any]], texts: list[str], **kwargs: Any) -> Any:
        """Run the processor on texts and their images (`groups[i]`: the images of `texts[i]`)."""
        flat = [im for group in groups for im in group]
        call: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True, **kwargs}
        if flat:
            call["images"] = flat
        return self.processor(**call)

    def prepare(self, images: list[Any] | None, text: str | list[str], **kwargs: Any) -> Any:
        """Processor outputs on the model's device, with the original image sizes recorded.

        `images`: None, a list for one text, one image per text, or one list per text. A text without the
        image placeholder is wrapped with `prompt()` for its images.
        """
        if self.processor is None:
            raise InputError(
                f"this {self.family} adapter has no processor: load the model with its processor"
            )
        texts = [text] if isinstance(text, str) else list(text)
        groups = [load_images(g) for g in group_images(images, texts)]
        token = self.image_token
        texts = [self.prompt(t, len(g)) if g and token not in t else t for t, g in zip(texts, groups)]
        for t, g in zip(texts, groups):
            if t.count(token) != len(g):
                raise InputError(
                    f"a prompt holds {t.count(token)} {token} placeholders for {len(g)} images: "
                    "build prompts with adapter.prompt(question, n_images)"
                )
        try:
            inputs = self.processor_call(groups, texts, **kwargs)
        except ValueError as e:
            raise InputError(f"the processor refused the inputs: {e}") from e
        if any(groups):
            inputs[ORIGINAL_SIZES_KEY] = sizes_tensor(groups)
        return to_model(inputs, self.model)

    def model_inputs(self, inputs: Any) -> dict[str, Any]:
        return without_private(inputs)

    # -- layout helpers --------------------------------------------------------------------------------
    def sizes_for(self, inputs: Any, first: int, count: int, processed: list[Any]) -> tuple[list[Any], str]:
        """Sizes of images `first .. first+count-1` and their coordinate system.

        Returns the recorded original sizes and "original", or `processed` and "processed" when `prepare`
        did not record them (inputs made by calling the processor directly).
        """
        sizes = original_sizes(inputs)
        if sizes is None:
            return processed, "processed"
        if len(sizes) < first + count:
            raise InputError(
                f"the inputs record {len(sizes)} image sizes but the prompts hold at least {first + count} images: "
                "prepare inputs with adapter.prepare(images, text)"
            )
        return sizes[first : first + count], "original"
