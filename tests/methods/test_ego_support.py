"""Shared builders for the Ego tests (imported by the other test_ego* modules): tiny models of three
families and a micro-VLM-shaped model; and a check of the prompt-format choice they rely on."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
    """An untrained model built by the micro VLM's recipe (quick sizes), with the micro VLM's checkpoint
    settings: its tokenizer, chat template, layout and prompt format are the real micro VLM's, so prompt
    formats can be checked without the trained checkpoint."""
    from egokit.models.loading import from_model
    from egokit.recipes.clip import ClipRecipe, build_clip
    from egokit.recipes.vlm import CHECKPOINT_SETTINGS, VlmRecipe, build_vlm

    clip = build_clip(ClipRecipe.quick(0))[0]
    model, processor = build_vlm(VlmRecipe.quick(0), clip)
    return from_model(model.eval(), processor, name="quick-micro-vlm", settings=CHECKPOINT_SETTINGS)


def save_quick_micro_vlm(folder: Path) -> Path:
    """`quick_micro_vlm()` written as a checkpoint folder (weights, processor and its egokit.json)."""
    from egokit.models.settings import SETTINGS_FILE

    lm = quick_micro_vlm()
    lm.model.save_pretrained(folder)
    lm.processor.save_pretrained(folder)
    (folder / SETTINGS_FILE).write_text(json.dumps(lm.settings), encoding="utf-8")
    return folder


def test_format_from_checkpoint_settings() -> None:
    from egokit.methods.ego import CHAT, MICRO, format_for
    from egokit.models.loading import from_model

    lm = quick_micro_vlm()
    assert format_for(lm) is MICRO
    assert format_for(from_model(lm.model, lm.processor, name="no-settings")) is CHAT  # no sniffing
    assert format_for(tiny("llava")) is CHAT
    assert format_for(from_model(lm.model, lm.processor, settings={"ego": {"prompt_format": "chat"}})) is CHAT


def test_shipped_micro_vlm_settings_name_the_micro_format() -> None:
    from egokit.models.settings import SETTINGS_FILE, read_settings
    from egokit.recipes.vlm import CHECKPOINT_SETTINGS
    from egokit.zoo import ZOO_DIR

    assert read_settings(ZOO_DIR / "micro-vlm") == CHECKPOINT_SETTINGS
    assert (ZOO_DIR / "micro-vlm" / SETTINGS_FILE).read_text() == json.dumps(CHECKPOINT_SETTINGS) + "\n"
