"""Tiny randomly initialised models of every supported family, built from configs (no download).

Used by tests, benchmarks and examples. Each family's file in `egokit.models.adapters` registers its
builder (`@register_tiny`): `build(seed=0, attn_implementation="sdpa", **overrides) -> (model, processor)`
returns a model in eval mode and a working offline processor.
"""

from __future__ import annotations

from typing import Any

from egokit.models.adapters import load_adapters
from egokit.models.adapters.base import TINY_BUILDERS


def families() -> tuple[str, ...]:
    """The families that have a tiny model (every registered family)."""
    load_adapters()
    return tuple(TINY_BUILDERS)


def build_tiny(family: str, seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any) -> tuple[Any, Any]:
    """Build a tiny random model and its processor for `family` (one of `families()`)."""
    load_adapters()
    build = TINY_BUILDERS.get(family)
    if build is None:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(TINY_BUILDERS)}")
    return build(seed=seed, attn_implementation=attn_implementation, **overrides)


FAMILIES = ("clip", "siglip", "llava", "llava_onevision", "qwen2_vl", "idefics3", "paligemma")

__all__ = ["FAMILIES", "build_tiny", "families"]
