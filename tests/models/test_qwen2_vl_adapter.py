"""Qwen2-VL / Qwen2.5-VL adapter on tiny random models: layout vs. the processor, features, boxes, round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from egokit.models.adapters import load_adapters
from egokit.models.adapters.qwen2_vl import Qwen2VLAdapter
from egokit.models.tiny import build_tiny

VARIANTS = ("qwen2_vl", "qwen2_5_vl")


def ramp(width: int, height: int) -> Image.Image:
    """Red grows left to right, green top to bottom: a pixel's colour tells where it came from."""
    x = (np.arange(width) + 0.5) / width
    y = (np.arange(height) + 0.5) / height
    rgb = np.zeros((height, width, 3), dtype=np.float64)
    rgb[..., 0] = x[None, :]
    rgb[..., 1] = y[:, None]
    rgb[..., 2] = 0.5
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


IMAGES = (ramp(64, 64), ramp(120, 50))


@pytest.fixture(scope="module", params=VARIANTS)
def adapter(request) -> Qwen2VLAdapter:
    model, processor = build_tiny("qwen2_vl", variant=request.param)
    return Qwen2VLAdapter(model, processor)


@pytest.fixture(scope="module")
def inputs(adapter):
    return adapter.prepare(list(IMAGES), adapter.prompt("what is this", 2))


def test_registered_for_both_model_types():
    registry = load_adapters()
    assert registry["qwen2_vl"] is Qwen2VLAdapter
    assert registry["qwen2_5_vl"] is Qwen2VLAdapter


def test_attention_modules(adapter):
    config = adapter.model.config
    assert len(adapter.attention_modules("language")) == config.text_config.num_hidden_layers
    assert len(adapter.attention_modules("vision")) == config.vision_config.depth
    assert adapter.attention_modules() == adapter.attention_modules("language")


def test_layout_matches_processor_expansion(adapter, inputs):
    layout = adapter.visual_layout(inputs, 0)
    assert len(layout) == 2
    image_positions = torch.nonzero(inputs["input_ids"][0] == adapter.image_token_id).flatten().cpu()
    assert torch.equal(torch.cat([t.positions for t in layout]), image_positions)
    merge = adapter.model.config.vision_config.spatial_merge_size
    for tokens, (t, h, w) in zip(layout, inputs["image_grid_thw"].tolist()):
        assert len(tokens) == t * h * w // merge**2
        assert tokens.grid == (h // merge, w // merge)
    assert [t.image_size for t in layout] == [(64, 64), (50, 120)]
    assert [t.extra["image_index"] for t in layout] == [0, 1]
    assert all(t.extra["coords"] == "original" for t in layout)


def test_features_fill_the_image_positions(adapter, inputs):
    layout = adapter.visual_layout(inputs, 0)
    with torch.no_grad():
        features = adapter.image_features(inputs)
    assert [f.shape[0] for f in features] == [len(t) for t in layout]
    assert features[0].shape[1] == adapter.model.config.text_config.hidden_size

    seen = {}

    def grab(module, args, kwargs):
        seen["embeds"] = kwargs["inputs_embeds"].detach()

    handle = adapter.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            adapter.model(**adapter.model_inputs(inputs))
    finally:
        handle.remove()
    for tokens, feats in zip(layout, features):
        torch.testing.assert_close(seen["embeds"][0, tokens.positions], feats[tokens.feature_index])


def test_boxes_tile_the_original_image(adapter, inputs):
    for tokens in adapter.visual_layout(inputs, 0):
        height, width = tokens.image_size
        boxes = tokens.boxes
        assert boxes.shape == (len(tokens), 4)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= width + 1e-4).all() and (boxes[:, 3] <= height + 1e-4).all()
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()
        assert area.item() == pytest.approx(width * height, rel=1e-5)


def test_boxes_follow_the_pixels(adapter, inputs):
    """Each token's patches (as the processor cut them) show the colour of its box centre in the ramp."""
    ip = adapter.processor.image_processor
    mean = torch.tensor(ip.image_mean).view(3, 1, 1, 1)
    std = torch.tensor(ip.image_std).view(3, 1, 1, 1)
    p, m = adapter.patch_size, adapter.merge_size
    pixels = inputs["pixel_values"].cpu()
    offset = 0
    for tokens, (t, h, w) in zip(adapter.visual_layout(inputs, 0), inputs["image_grid_thw"].tolist()):
        height, width = tokens.image_size
        patches = pixels[offset : offset + t * h * w].view(t * h * w // m**2, m * m, 3, -1, p, p)
        offset += t * h * w
        for k, box in zip(tokens.feature_index.tolist(), tokens.boxes):
            colour = (patches[k].permute(1, 0, 2, 3, 4).reshape(3, -1, p, p) * std + mean).mean(dim=(1, 2, 3))
            cx, cy = (box[0] + box[2]).item() / 2 / width, (box[1] + box[3]).item() / 2 / height
            assert colour[0].item() == pytest.approx(cx, abs=0.03)
            assert colour[1].item() == pytest.approx(cy, abs=0.03)


def test_batch_rows_with_different_image_counts(adapter):
    question = "what is this"
    inputs = adapter.prepare(
        [[IMAGES[1]], list(IMAGES)], [adapter.prompt(question, 1), adapter.prompt(question, 2)]
    )
    first, second = adapter.visual_layout(inputs, 0), adapter.visual_layout(inputs, 1)
    assert [t.extra["image_index"] for t in first] == [0]
    assert [t.extra["image_index"] for t in second] == [1, 2]
    assert [t.image_size for t in second] == [(64, 64), (50, 120)]
    for row, layout in ((0, first), (1, second)):
        ids = inputs["input_ids"][row]
        expected = torch.nonzero(ids == adapter.image_token_id).flatten().cpu()
        assert torch.equal(torch.cat([t.positions for t in layout]), expected)
    with torch.no_grad():
        features = adapter.image_features(inputs)
    assert [f.shape[0] for f in features] == [len(t) for t in first + second]


def test_processed_coordinates_without_recorded_sizes(adapter):
    processor = adapter.processor
    raw = processor(images=[IMAGES[1]], text=[adapter.prompt("what", 1)], return_tensors="pt")
    (tokens,) = adapter.visual_layout(raw, 0)
    assert tokens.extra["coords"] == "processed"
    assert tokens.image_size == tokens.extra["resized_size"]
    assert "mm_token_type_ids" in adapter.model_inputs(
        {k: v for k, v in raw.items() if k != "mm_token_type_ids"}
    )


def test_forward_and_generate(adapter, inputs):
    kwargs = adapter.model_inputs(inputs)
    with torch.no_grad():
        logits = adapter.model(**kwargs).logits
        out = adapter.model.generate(**kwargs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert logits.shape == (*inputs["input_ids"].shape, adapter.model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3


def test_save_and_load_give_identical_logits(adapter, inputs, tmp_path):
    from transformers import AutoModelForImageTextToText

    from egokit.models.processors import load_processor

    adapter.model.save_pretrained(tmp_path)
    adapter.processor.save_pretrained(tmp_path)
    model_type = adapter.model.config.model_type
    processor = load_processor(tmp_path, model_type)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    again = Qwen2VLAdapter(model, processor)
    inputs2 = again.prepare(list(IMAGES), again.prompt("what is this", 2))
    assert inputs2.keys() == inputs.keys()
    for key in inputs:
        assert torch.equal(inputs[key], inputs2[key]), key
    with torch.no_grad():
        expected = adapter.model(**adapter.model_inputs(inputs)).logits
        assert torch.equal(model(**again.model_inputs(inputs2)).logits, expected)

    loading = pytest.importorskip("egokit.models.loading")
    loaded = loading.load(str(tmp_path))
    assert isinstance(loaded.adapter, Qwen2VLAdapter)
    inputs3 = loaded.adapter.prepare(list(IMAGES), loaded.adapter.prompt("what is this", 2))
    with torch.no_grad():
        assert torch.equal(loaded.model(**loaded.adapter.model_inputs(inputs3)).logits, expected)
