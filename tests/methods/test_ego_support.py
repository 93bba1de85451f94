"""Shared builders for the Ego tests (imported by the other test_ego* modules): tiny models of three
families and a micro-VLM-shaped model; and a check of the prompt-format choice they rely on."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    """One torch CPU thread inside the block (tiny models run many times faster on one busy core)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def tiny(family: str) -> Any:
    """A tiny random model of `family` wrapped as a LoadedModel (built once per test session)."""
    from egokit.models.loading import from_model
    from egokit.models.tiny import build_tiny

    model, processor = build_tiny(family)
    return from_model(model, processor, name=f"tiny-{family}")


@functools.cache
def quick_micro_vlm() -> Any:
    """An untrained model built by the micro VLM's recipe (quick sizes): its tokenizer, chat template and
    layout are the real micro VLM's, so prompt formats can be checked without the trained checkpoint."""
    from egokit.models.loading import from_model
    from egokit.recipes.clip import ClipRecipe, build_clip
    from egokit.recipes.vlm import VlmRecipe, build_vlm

    clip = build_clip(ClipRecipe.quick(0))[0]
    model, processor = build_vlm(VlmRecipe.quick(0), clip)
    return from_model(model.eval(), processor, name="quick-micro-vlm")


def test_format_detection() -> None:
    from egokit.methods.ego.formats import CHAT, MICRO, format_for

    assert format_for(quick_micro_vlm()) is MICRO
    assert format_for(tiny("llava")) is CHAT
