"""The family contract, checked the same way on the tiny model of every registered family.

A family's file (egokit/models/adapters/<family>.py) declares its parts, block layout, capabilities and
rope kind as data and registers a tiny model; these checks hold for every one of them, so a new family is
covered by adding its file (and its own adapter test for what is particular to it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from egokit.errors import CapabilityError
from egokit.models.adapters import FAMILY_MODULES, load_adapters
from egokit.models.adapters.base import (
    CAPABILITIES,
    DUAL_ENCODER,
    GENERATES_TEXT,
    SOFT_VISUAL_TOKENS,
    TINY_BUILDERS,
    WRAPPABLE_VIT,
)
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

load_adapters()
FAMILIES = sorted(TINY_BUILDERS)
IMAGE = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module", params=FAMILIES)
def loaded(request):
    model, processor = build_tiny(request.param)
    return from_model(model, processor, f"tiny-{request.param}")


def test_every_family_module_registers_an_adapter_and_a_tiny_model():
    registry = load_adapters()
    families = {cls.family for cls in registry.values()}
    assert set(TINY_BUILDERS) == families
    for module in FAMILY_MODULES:
        assert any(cls.__module__.endswith(f".{module}") for cls in registry.values()), module


def test_declarations_are_well_formed(loaded):
    adapter = loaded.adapter
    assert adapter.family in TINY_BUILDERS
    assert loaded.model_type in type(adapter).model_types
    assert adapter.capabilities <= set(CAPABILITIES)
    assert adapter.rope in ("1d", "mrope", "none")
    assert (SOFT_VISUAL_TOKENS not in adapter.capabilities) or (GENERATES_TEXT in adapter.capabilities)
    assert (GENERATES_TEXT in adapter.capabilities) != (DUAL_ENCODER in adapter.capabilities)


def test_every_declared_part_is_found(loaded):
    adapter = loaded.adapter
    for part in adapter.paths:
        module = adapter.module(part)
        assert isinstance(module, nn.Module), part
        name = adapter.module_name(part)
        assert dict(loaded.model.named_modules())[name] is module
    for part in adapter.parts:
        attention = adapter.attention_modules(part)
        assert len(attention) == adapter.num_layers(part) > 0
        blocks_part = {"language": "language_blocks", "vision": "vision_blocks", "text": "text_blocks"}[part]
        assert len(adapter.module(blocks_part)) == len(attention)
    with pytest.raises(CapabilityError, match="no part"):
        adapter.module("no_such_part")


def test_wrappable_vit_blocks_have_every_piece(loaded):
    adapter = loaded.adapter
    if WRAPPABLE_VIT not in adapter.capabilities:
        pytest.skip(f"{adapter.family} declares no wrappable ViT")
    names = ("attention", "q", "k", "v", "out", "fc1", "fc2", "norm1", "norm2")
    for block in adapter.module("vision_blocks"):
        for name in names:
            assert isinstance(adapter.block_module(block, name), nn.Module)
    full = adapter.block_module_names("vision_blocks", ("q", "fc1"))
    modules = dict(loaded.model.named_modules())
    assert len(full) == 2 * len(adapter.module("vision_blocks")) and all(n in modules for n in full)


def test_capabilities_are_true(loaded):
    adapter, model = loaded.adapter, loaded.model
    missing = next(c for c in CAPABILITIES if c not in adapter.capabilities)
    with pytest.raises(CapabilityError, match=missing):
        adapter.require(missing, "this check")
    if GENERATES_TEXT in adapter.capabilities:
        inputs = adapter.model_inputs(adapter.prepare([IMAGE], adapter.prompt("what is it ?")))
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
        assert out.shape[1] > inputs["input_ids"].shape[1]
    if DUAL_ENCODER in adapter.capabilities:
        inputs = adapter.model_inputs(adapter.prepare([IMAGE], "a red circle"))
        with torch.no_grad():
            out = model(**inputs)
        assert out.logits_per_image.shape == (1, 1)


def test_visual_layout_matches_the_processed_inputs(loaded):
    adapter = loaded.adapter
    generative = GENERATES_TEXT in adapter.capabilities
    text = adapter.prompt("what is it ?") if generative else "a red circle"
    inputs = adapter.prepare([IMAGE], text)
    layout = adapter.visual_layout(inputs, 0)
    assert layout, "no image found in the inputs"
    features = adapter.image_features(inputs)
    assert len(features) == len(layout)
    for tokens, feats in zip(layout, features):
        n = len(tokens)
        assert n > 0 and tokens.boxes.shape == (n, 4) and tokens.feature_index.shape == (n,)
        assert int(tokens.feature_index.max()) < feats.shape[0]
        h, w = tokens.image_size
        assert float(tokens.boxes[:, [0, 2]].min()) >= 0 and float(tokens.boxes[:, [0, 2]].max()) <= w + 1e-4
        assert float(tokens.boxes[:, [1, 3]].min()) >= 0 and float(tokens.boxes[:, [1, 3]].max()) <= h + 1e-4
        rows, cols = tokens.grid
        assert rows * cols <= n
        if generative:
            ids = inputs["input_ids"][0]
            assert bool((ids[tokens.positions] == adapter.image_token_id).all())
            assert feats.shape[-1] == loaded.model.get_input_embeddings().embedding_dim
