"""Helpers shared by adapters: finding attention stacks, grouping images per prompt, device moves, and
reading image features out of whatever `get_image_features` returns in the installed transformers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from egokit.errors import InputError
from egokit.models.geometry import ORIGINAL_SIZES_KEY, image_size_of


def submodule(model: nn.Module, *paths: str) -> nn.Module:
    """The first of `paths` (dotted attribute paths) that exists on `model`; raises AttributeError if none."""
    for path in paths:
        obj: Any = model
        for name in path.split("."):
            obj = getattr(obj, name, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    raise AttributeError(f"{type(model).__name__} has none of {', '.join(paths)}")


def attention_stack(root: nn.Module, attr: str = "self_attn") -> list[nn.Module]:
    """`layer.<attr>` for each layer of the first `nn.ModuleList` under `root` whose layers all have `attr`.

    Module order follows `named_modules()`, so for a language model this is its decoder layers and for a
    vision tower its encoder layers.
    """
    for module in root.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0 and all(hasattr(m, attr) for m in module):
            return [getattr(m, attr) for m in module]
    raise AttributeError(f"no stack of layers with a {attr!r} module under {type(root).__name__}")


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device of the input embeddings (where inputs go, also when sharded) and the floating dtype to feed."""
    device = getattr(model, "device", None)
    try:
        emb = model.get_input_embeddings()
        device = emb.weight.device
    except (AttributeError, NotImplementedError):
        pass
    if device is None:
        device = next(model.parameters()).device
    dtype = getattr(model, "dtype", None) or next(model.parameters()).dtype
    return torch.device(device), dtype


def to_model(inputs: Any, model: nn.Module) -> Any:
    """Move prepared inputs to the model's device; floating tensors (pixels) take the model's dtype."""
    device, dtype = model_device_dtype(model)
    if hasattr(inputs, "to"):
        return inputs.to(device=device, dtype=dtype)

    def move(v: Any) -> Any:
        if not torch.is_tensor(v):
            return v
        return v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)

    return {k: move(v) for k, v in inputs.items()}


def _is_image(x: Any) -> bool:
    return not isinstance(x, (list, tuple))


def group_images(images: Any, texts: Sequence[str]) -> list[list[Any]]:
    """Images per text: `None` → none; one text → all images; a flat list as long as `texts` → one each;
    a nested list → as given (one list per text)."""
    n = len(texts)
    if images is None:
        return [[] for _ in range(n)]
    if _is_image(images):
        images = [images]
    images = list(images)
    if images and all(isinstance(x, (list, tuple)) for x in images):
        if len(images) != n:
            raise InputError(f"got {len(images)} image lists for {n} texts: give one list of images per text")
        return [list(x) for x in images]
    if n == 1:
        return [images]
    if len(images) == n:
        return [[im] for im in images]
    raise InputError(
        f"got {len(images)} images for {n} texts: give one image per text, or a list of images per text"
    )


def load_images(images: list[Any]) -> list[Any]:
    """Decode paths/bytes into RGB PIL images (PIL images and arrays are normalised too); tensors pass."""
    from egokit.data.images import load_image

    return [im if torch.is_tensor(im) else load_image(im) for im in images]


def sizes_tensor(groups: list[list[Any]]) -> torch.Tensor:
    """(n_images, 2) long tensor of original (height, width), images in order."""
    sizes = [image_size_of(im) for group in groups for im in group]
    return torch.tensor(sizes, dtype=torch.long).reshape(-1, 2)


def without_private(inputs: Any) -> dict[str, Any]:
    """Model kwargs: the prepared inputs minus egokit's own keys."""
    return {k: v for k, v in dict(inputs).items() if k != ORIGINAL_SIZES_KEY}


def feature_list(output: Any) -> list[torch.Tensor]:
    """Per-image (N_i, D) tensors from `get_image_features`' return value.

    Handles an output object (transformers 5.x: `.pooler_output` is a list or a tensor; some families use
    `.image_hidden_states` or `.last_hidden_state`), a tuple/list of tensors, or a single tensor
    (batched (B, N, D) → one entry per image; (N, D) → one image).
    """
    value = output
    for attr in ("pooler_output", "image_hidden_states", "last_hidden_state"):
        candidate = getattr(output, attr, None)
        if candidate is not None and not callable(candidate):
            value = candidate
            break
    if torch.is_tensor(value):
        return list(value) if value.dim() == 3 else [value]
    if isinstance(value, (list, tuple)):
        out: list[torch.Tensor] = []
        for v in value:
            out.extend(feature_list(v))
        return out
    raise TypeError(f"cannot read image features from a {type(output).__name__}")


def chat_prompt(processor: Any, question: str, n_images: int, fallback: str) -> str:
    """The processor's chat template applied to one user turn with `n_images` images, or `fallback`."""
    messages = [
        {"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": question}]}
    ]
    template = getattr(processor, "chat_template", None) or getattr(
        getattr(processor, "tokenizer", None), "chat_template", None
    )
    if template:
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return fallback



def merge_config(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """A deep copy of `base` updated with `extra` (a tiny model's defaults with a test's overrides)."""
    import copy

    out = copy.deepcopy(base)
    out.update(extra or {})
    return out


def tiny_layers(width: int, layers: int = 2, heads: int = 2) -> dict[str, int]:
    """The size keys of a tiny transformer config: `layers` blocks of `width` with `heads` heads, MLP 2×width."""
    return {"hidden_size": width, "intermediate_size": 2 * width, "num_hidden_layers": layers,
            "num_attention_heads": heads}


def tiny_token_ids(tokenizer: Any) -> dict[str, int]:
    """The vocabulary keys of a tiny text config, from its offline tokenizer (ids inside the vocabulary)."""
    return {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}


def tiny_model(model_class: Any, config: Any, seed: int, attn_implementation: str, tokenizer: Any = None) -> Any:
    """A randomly initialised float32 `model_class` from `config`, its weights drawn from `seed` without
    touching the caller's random state; with a tokenizer, its generation config uses the tokenizer's ids."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class._from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    if tokenizer is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


#: the cut-down language model of a real-geometry model: 2 layers × width 64, 4 heads (2 key/value heads)
REAL_TEXT_CUT: dict[str, int] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                 "num_attention_heads": 4, "num_key_value_heads": 2}
#: the cut-down vision tower of a real-geometry model: 2 layers × width 32, 2 heads
REAL_VISION_CUT: dict[str, int] = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                   "num_attention_heads": 2}
#: sub-config keys whose overrides are merged into a builder's defaults rather than replacing them
SUB_CONFIGS = ("text_config", "vision_config", "image_processor")


def real_overrides(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A real-geometry builder's settings for the tiny builder: `defaults`, with a caller's `overrides` on top
    (`text_config` / `vision_config` / `image_processor` dicts merged key by key, other keys replaced)."""
    out = merge_config(defaults, {k: v for k, v in overrides.items() if k not in SUB_CONFIGS})
    for key in SUB_CONFIGS:
        if key in overrides:
            out[key] = merge_config(out.get(key) or {}, overrides[key])
    return out


def real_tokenizer(special: dict[str, str], template: str | None, words: tuple[str, ...] = (),
                   **kwargs: Any) -> Any:
    """An offline word tokenizer with a checkpoint's special tokens and a chat template of its form.

    special: `bos_token` / `eos_token` / `pad_token` / `unk_token` go to the tokenizer's own specials, every
             other name (`image_token`, ...) becomes a named extra special token.
    words:   words the template writes, added to the tiny vocabulary so they do not read as unknown.
    """
    from egokit.models.text import DEFAULT_SPECIAL_TOKENS, TINY_WORDS, word_tokenizer

    own = {k: v for k, v in special.items() if k in DEFAULT_SPECIAL_TOKENS}
    extra = {k: v for k, v in special.items() if k not in DEFAULT_SPECIAL_TOKENS}
    return word_tokenizer((*TINY_WORDS, *words), own or None, extra_special_tokens=extra,
                          chat_template_str=template, **kwargs)


def vlm_paths(vision: str, vision_blocks: tuple[str, ...], projector: str, language: str,
              language_blocks: str = "layers") -> dict[str, tuple[str, ...]]:
    """The `paths` of a VLM from the names of its parts: each part sits on the base model inside the
    generation head (`model.<name>`) or, in older layouts, on the head itself; block paths are relative to
    the vision tower and the language model."""

    def both(path: str) -> tuple[str, str]:
        return (f"model.{path}", path)

    return {
        "vision": both(vision),
        "vision_blocks": tuple(p for block in vision_blocks for p in both(f"{vision}.{block}")),
        "projector": both(projector),
        "language": both(language),
        "language_blocks": both(f"{language}.{language_blocks}"),
    }


__all__ = [
    "REAL_TEXT_CUT",
    "REAL_VISION_CUT",
    "real_overrides",
    "real_tokenizer",
    "vlm_paths",
    "merge_config",
    "tiny_model",
    "tiny_layers",
    "tiny_token_ids",
    "attention_stack",
    "chat_prompt",
    "feature_list",
    "group_images",
    "load_images",
    "model_device_dtype",
    "sizes_tensor",
    "submodule",
    "to_model",
    "without_private",
]
