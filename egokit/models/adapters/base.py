"""What every model family's adapter knows: where the parts are, what the family can do, and where the
visual tokens are.

An adapter wraps one loaded transformers model and its processor. Adding a family is one small subclass
of `Adapter` registered with `@register_adapter`, plus a tiny-config test (see `egokit.models.tiny`).
Most of what a family declares is data:

- `paths`: where each *part* is, as attribute paths from the loaded model (first that exists wins, so
  one entry covers the layouts of several transformers versions). Part names: "vision" (the vision
  transformer), "vision_blocks", "projector" (VLM) or "image_projection" (dual encoder), "text" and
  "text_blocks" (dual encoder), "text_embeddings" (the text encoder's token embedding), "language" (the
  decoder language model), "language_blocks" (VLM) and "rope_index" (M-RoPE families: the module that
  owns `get_rope_index`). Methods ask `adapter.module(part)` and never name a path.
- `block_paths`: inside one vision block, where "attention", "q", "k", "v", "out", "fc1", "fc2",
  "norm1" and "norm2" are (methods that wrap or tune a ViT use `adapter.block_module(i, name)`).
- `capabilities`: what methods may rely on (`GENERATES_TEXT`, `DUAL_ENCODER`, `SOFT_VISUAL_TOKENS`,
  `WRAPPABLE_VIT`); a method calls `adapter.require(capability, "its name")`, one clear error if missing.
- `rope`: "1d" (ordinary positions), "mrope" (Qwen2-VL's 3-D positions) or "none".

Nothing here hard-codes token counts: the layout of visual tokens is derived from the config and from
what the processor produced (`input_ids`, `image_grid_thw`, `image_sizes`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from egokit.errors import CapabilityError, ModelLoadError

#: the family generates text (a VLM with a language model head)
GENERATES_TEXT = "generates text"
#: image and text embeddings in one joint space (CLIP, SigLIP)
DUAL_ENCODER = "dual encoder"
#: takes projected visual tokens as input embeddings between text pieces (memories, soft prompts)
SOFT_VISUAL_TOKENS = "soft visual tokens in context"
#: a ViT vision tower with the pre-norm block layout of `block_paths` that a method can wrap or tune
WRAPPABLE_VIT = "wrappable ViT vision tower"
CAPABILITIES = (GENERATES_TEXT, DUAL_ENCODER, SOFT_VISUAL_TOKENS, WRAPPABLE_VIT)

#: the block layout of CLIP-style vision encoders (CLIP, SigLIP; LLaVA's and PaliGemma's towers)
CLIP_BLOCK_PATHS: dict[str, tuple[str, ...]] = {
    "attention": ("self_attn",),
    "q": ("self_attn.q_proj",),
    "k": ("self_attn.k_proj",),
    "v": ("self_attn.v_proj",),
    "out": ("self_attn.out_proj",),
    "fc1": ("mlp.fc1",),
    "fc2": ("mlp.fc2",),
    "norm1": ("layer_norm1",),
    "norm2": ("layer_norm2",),
}


def find_path(root: Any, paths: tuple[str, ...]) -> tuple[str, Any] | None:
    """The first of `paths` (dotted attribute paths) that exists under `root`, and what it leads to."""
    for path in paths:
        found = root
        try:
            for name in path.split("."):
                found = getattr(found, name)
        except AttributeError:
            continue
        if found is not None:
            return path, found
    return None


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
    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATES_TEXT, SOFT_VISUAL_TOKENS})
    paths: ClassVar[dict[str, tuple[str, ...]]] = {}
    block_paths: ClassVar[dict[str, tuple[str, ...]]] = CLIP_BLOCK_PATHS
    rope: ClassVar[str] = "1d"

    def __init__(self, model: nn.Module, processor: Any = None) -> None:
        self.model = model
        self.processor = processor

    # -- capabilities ----------------------------------------------------------------------------------
    @property
    def is_generative(self) -> bool:
        return GENERATES_TEXT in self.capabilities

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str, needed_by: str) -> None:
        """Raise `CapabilityError` naming `capability` when this family lacks it."""
        if capability not in self.capabilities:
            have = ", ".join(sorted(self.capabilities)) or "none"
            raise CapabilityError(f"{needed_by} needs a model with the capability {capability!r}; the "
                                  f"{self.family} family has: {have}. Pick a model of another family.")

    # -- parts -----------------------------------------------------------------------------------------
    def module(self, part: str) -> nn.Module:
        """The module of one part (see the module docstring for the names), found through `paths`."""
        candidates = self.paths.get(part)
        found = find_path(self.model, candidates) if candidates else None
        if found is None:
            if candidates is None:
                raise CapabilityError(f"the {self.family} family has no part {part!r} (it has: "
                                      f"{', '.join(sorted(self.paths)) or 'none'})")
            raise ModelLoadError(f"a {type(self.model).__name__} has none of {', '.join(candidates)} for its "
                                 f"{part!r}: this transformers version lays the model out differently; add the "
                                 f"path to the {self.family} family's `paths`")
        return found[1]

    def module_name(self, part: str) -> str:
        """The dotted name of a part under the model (as `model.named_modules()` spells it)."""
        self.module(part)
        found = find_path(self.model, self.paths[part])
        assert found is not None
        return found[0]

    def block_module(self, block: nn.Module, name: str) -> nn.Module:
        """A named piece ("q", "fc1", "norm1", ...) of one vision block, found through `block_paths`."""
        candidates = self.block_paths.get(name, ())
        found = find_path(block, candidates)
        if found is None:
            raise ModelLoadError(f"a {type(block).__name__} has none of {', '.join(candidates) or '(no paths)'} "
                                 f"for its {name!r}; add the path to the {self.family} family's `block_paths`")
        return found[1]

    def block_module_names(self, part: str, names: tuple[str, ...]) -> list[str]:
        """Full dotted names (under the model) of pieces `names` in every block of `part` ("vision_blocks")."""
        prefix = self.module_name(part)
        out = []
        for i, block in enumerate(self.module(part)):
            for name in names:
                path = next(p for p in self.block_paths[name] if find_path(block, (p,)) is not None)
                out.append(f"{prefix}.{i}.{path}")
        return out

    @property
    def vision_tower(self) -> nn.Module:
        return self.module("vision")

    @property
    def projector(self) -> nn.Module:
        return self.module("projector")

    @property
    def language_model(self) -> nn.Module:
        return self.module("language")

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
#: family → a builder of a tiny random model of it, `(seed, attn_implementation, **overrides) -> (model, processor)`
TINY_BUILDERS: dict[str, Callable[..., tuple[Any, Any]]] = {}


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator: make an adapter available for its `model_types`."""
    for mt in cls.model_types:
        ADAPTERS[mt] = cls
    return cls


@dataclass(frozen=True)
class TowerShape:
    """Widths and depths of one transformer stack of a real checkpoint (names as in transformers configs,
    so `egokit.capture.memory.estimate_attention_memory` reads it like a config)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    vocab_size: int | None = None

    def to_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class RealCheckpoint:
    """The shape of a published checkpoint that a real-geometry model mirrors.

    checkpoint: the hub id whose public `config.json` / `preprocessor_config.json` the values come from.
    text:       its language model (VLMs) or text encoder (dual encoders); `vision`: its vision tower.
    `text_config` makes the record read like a transformers config for memory estimates.
    """

    checkpoint: str
    text: TowerShape
    vision: TowerShape

    @property
    def text_config(self) -> TowerShape:
        return self.text

    @property
    def vision_config(self) -> TowerShape:
        return self.vision


#: family → a builder of its real-geometry model: the checkpoint's image/processor settings, cut-down widths
REAL_BUILDERS: dict[str, Callable[..., tuple[Any, Any]]] = {}
#: name (family, or variant such as "smolvlm") → the shape of the checkpoint its real geometry mirrors
REAL_CHECKPOINTS: dict[str, RealCheckpoint] = {}
#: name of a real checkpoint → its family (a name that is not the family's own is a `variant` of its builder)
REAL_FAMILY_OF: dict[str, str] = {}


def register_real(family: str, **checkpoints: RealCheckpoint
                  ) -> Callable[[Callable[..., tuple[Any, Any]]], Callable[..., tuple[Any, Any]]]:
    """Decorator: the builder of `family`'s real-geometry model (`build_tiny(family, geometry="real")`) and
    the checkpoints it mirrors, by name (the family's name, and a variant's name where it has several)."""

    def decorate(build: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
        REAL_BUILDERS[family] = build
        REAL_CHECKPOINTS.update(checkpoints)
        REAL_FAMILY_OF.update({name: family for name in checkpoints})
        return build

    return decorate


def register_tiny(family: str) -> Callable[[Callable[..., tuple[Any, Any]]], Callable[..., tuple[Any, Any]]]:
    """Decorator: the builder of a tiny random model of `family`, built from a config with an offline
    processor (no download), for tests and examples (`egokit.models.tiny.build_tiny(family)`)."""

    def decorate(build: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
        TINY_BUILDERS[family] = build
        return build

    return decorate
