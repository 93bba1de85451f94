"""Fixtures the method tests share: one torch thread for a module's tests, and LoRSU's tiny CLIP (4 vision
heads) with a toy session of 12 random images in 3 classes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from egokit.models.tiny import build_tiny

#: vision heads of LoRSU's tiny CLIP
LORSU_HEADS = 4


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Small models train fastest on one thread (and a busy machine makes two far slower)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def lorsu_clip() -> Any:
    """A tiny random CLIP and its processor (4 vision heads)."""
    return build_tiny("clip", seed=1, vision_config={"num_attention_heads": LORSU_HEADS})


@pytest.fixture(scope="module")
def lorsu_session(lorsu_clip: Any) -> Any:
    """12 random 64×64 images in 3 classes, as one LoRSU session."""
    from egokit.methods.lorsu.training import SessionData

    _, processor = lorsu_clip
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(12)]
    return SessionData.from_images(processor, images, [i % 3 for i in range(12)],
                                   ["a red circle .", "a blue square .", "a green cross ."], name="toy")
