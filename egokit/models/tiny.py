"""Tiny randomly initialised models of every supported family, built from configs (no download).

Used by tests, benchmarks and examples. Each family's file in `egokit.models.adapters` registers its
builder (`@register_tiny`): `build(seed=0, attn_implementation="sdpa", **overrides) -> (model, processor)`
returns a model in eval mode and a working offline processor.

`geometry="real"` builds the family's *real-geometry* model instead (`@register_real` in the same file): the
image and processor settings of a published checkpoint (image size, patch size, merge or scale factor,
pinpoints or splitting, pixel bounds, special tokens, a chat template of the checkpoint's form, which vision
layer feeds the projector), with the language and vision widths and depths cut down so that a forward pass
takes seconds on a CPU. Its visual-token counts and sequence lengths are the checkpoint's; the widths,
depths and heads of the checkpoint itself are recorded as data (`real_checkpoint`), for memory estimates.
"""

from __future__ import annotations

from typing import Any

from egokit.models.adapters import load_adapters
from egokit.models.adapters.base import (
    REAL_BUILDERS,
    REAL_CHECKPOINTS,
    REAL_FAMILY_OF,
    TINY_BUILDERS,
    RealCheckpoint,
)

GEOMETRIES = ("tiny", "real")


def families() -> tuple[str, ...]:
    """The families that have a tiny model (every registered family)."""
    load_adapters()
    return tuple(TINY_BUILDERS)


def build_tiny(family: str, seed: int = 0, attn_implementation: str = "sdpa", *, geometry: str = "tiny",
               **overrides: Any) -> tuple[Any, Any]:
    """Build a tiny random model and its processor for `family` (one of `families()`).

    geometry: "tiny" (64×64 images, patch 8) or "real" (a published checkpoint's image geometry with small
              widths; see the module docstring).
    """
    load_adapters()
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry {geometry!r}; choose one of {', '.join(GEOMETRIES)}")
    builders = TINY_BUILDERS if geometry == "tiny" else REAL_BUILDERS
    build = builders.get(family)
    if build is None:
        raise ValueError(f"no {geometry} model of family {family!r}; choose one of {', '.join(builders)}")
    return build(seed=seed, attn_implementation=attn_implementation, **overrides)


def real_checkpoint(name: str) -> RealCheckpoint:
    """The published checkpoint a real-geometry model mirrors, with its real widths and depths.

    name: a family ("llava", "qwen2_vl", ...) or a variant with its own checkpoint ("smolvlm").
    """
    load_adapters()
    found = REAL_CHECKPOINTS.get(name)
    if found is None:
        raise ValueError(f"no real checkpoint named {name!r}; choose one of {', '.join(REAL_CHECKPOINTS)}")
    return found


def build_real(name: str, seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any) -> tuple[Any, Any]:
    """The real-geometry model mirroring checkpoint `name` (a family, or a variant such as "smolvlm")."""
    real_checkpoint(name)
    family = REAL_FAMILY_OF[name]
    if name != family:
        overrides = {"variant": name, **overrides}
    return build_tiny(family, seed, attn_implementation, geometry="real", **overrides)


def real_checkpoints() -> dict[str, RealCheckpoint]:
    """Every recorded real checkpoint, by name."""
    load_adapters()
    return dict(REAL_CHECKPOINTS)


FAMILIES = ("clip", "siglip", "llava", "llava_onevision", "qwen2_vl", "idefics3", "paligemma")

__all__ = [
    "FAMILIES",
    "GEOMETRIES",
    "build_real",
    "build_tiny",
    "families",
    "real_checkpoint",
    "real_checkpoints",
]
