"""Tiny randomly initialised models of every supported family, built from configs (no download).

Used by tests, benchmarks and examples. Each family module defines `build(seed=0, attn_implementation="sdpa",
**overrides) -> (model, processor)` returning a model in eval mode and a working offline processor.
"""

from __future__ import annotations

import importlib
from typing import Any

FAMILIES = ("clip", "siglip", "llava", "llava_onevision", "qwen2_vl", "idefics3", "paligemma")


def build_tiny(family: str, seed: int = 0, attn_implementation: str = "sdpa", **overrides: Any) -> tuple[Any, Any]:
    """Build a tiny random model and its processor for `family` (one of FAMILIES)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(FAMILIES)}")
    module = importlib.import_module(f"egokit.models.tiny.{family}")
    return module.build(seed=seed, attn_implementation=attn_implementation, **overrides)
