"""PaliGemma adapter on a tiny random model: image tokens first, one square grid per image, boxes through the resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from egokit.models.adapters import load_adapters
from egokit.models.adapters.paligemma import PaliGemmaAdapter
from egokit.models.tiny import build_tiny


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


@pytest.fixture(scope="module")
def adapter() -> PaliGemmaAdapter:
    model, processor = build_tiny("paligemma")
    return PaliGemmaAdapter(model, processor)


@pytest.fixture(scope="module")
def inputs(adapter):
    return adapter.prepare(list(IMAGES), adapter.prompt("answer en what is this", 2))


def test_registered():
    assert load_adapters()["paligemma"] is PaliGemmaAdapter


def test_attention_modules(adapter):
    config = adapter.model.config
    assert len(adapter.attention_modules("language")) == config.text_config.num_hidden_layers
    assert len(adapter.attention_modules("vision")) == config.vision_config.num_hidden_layers


def test_prompt_puts_images_first(adapter, inputs):
    side = adapter.grid_side
    n_image_tokens = 2 * side * side
    ids = inputs["input_ids"][0]
    assert (ids[:n_image_tokens] == adapter.image_token_id).all()
    assert ids[n_image_tokens] == adapter.processor.tokenizer.bos_token_id
    assert (inputs["token_type_ids"][0] == 0).all()  # image + question: one bidirectional prefix
    assert "labels" not in adapter.model_inputs(inputs)


def test_layout_matches_processor_expansion(adapter, inputs):
    layout = adapter.visual_layout(inputs, 0)
    side = adapter.grid_side
    assert (
        side * side == adapter.processor.image_seq_length == adapter.model.config.text_config.num_image_tokens
    )
    assert len(layout) == 2
    image_positions = torch.nonzero(inputs["input_ids"][0] == adapter.image_token_id).flatten().cpu()
    assert torch.equal(torch.cat([t.positions for t in layout]), image_positions)
    assert [t.grid for t in layout] == [(side, side)] * 2
    assert [t.image_size for t in layout] == [(64, 64), (50, 120)]
    assert all(t.extra["coords"] == "original" for t in layout)


def test_features_fill_the_image_positions(adapter, inputs):
    layout = adapter.visual_layout(inputs, 0)
    with torch.no_grad():
        features = adapter.image_features(inputs)
    assert [f.shape[0] for f in features] == [len(t) for t in layout]

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
        assert (boxes[:, :2] >= 0).all()
        assert (boxes[:, 2] <= width + 1e-4).all() and (boxes[:, 3] <= height + 1e-4).all()
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()
        assert area.item() == pytest.approx(width * height, rel=1e-5)


def test_boxes_follow_the_pixels(adapter, inputs):
    ip = adapter.processor.image_processor
    mean = torch.tensor(ip.image_mean).view(3, 1, 1)
    std = torch.tensor(ip.image_std).view(3, 1, 1)
    side = adapter.grid_side
    pixels = inputs["pixel_values"].cpu()
    cell = pixels.shape[-1] // side
    for image, tokens in enumerate(adapter.visual_layout(inputs, 0)):
        height, width = tokens.image_size
        for f, box in zip(tokens.feature_index.tolist(), tokens.boxes):
            i, j = divmod(f, side)
            patch = pixels[image, :, i * cell : (i + 1) * cell, j * cell : (j + 1) * cell]
            colour = (patch * std + mean).mean(dim=(1, 2))
            cx, cy = (box[0] + box[2]).item() / 2 / width, (box[1] + box[3]).item() / 2 / height
            assert colour[0].item() == pytest.approx(cx, abs=0.03)
            assert colour[1].item() == pytest.approx(cy, abs=0.03)


def test_batch_rows(adapter):
    inputs = adapter.prepare(
        [[IMAGES[1]], list(IMAGES)], [adapter.prompt("what", 1), adapter.prompt("what", 2)]
    )
    first, second = adapter.visual_layout(inputs, 0), adapter.visual_layout(inputs, 1)
    assert [t.extra["image_index"] for t in first + second] == [0, 1, 2]
    assert [t.image_size for t in first + second] == [(50, 120), (64, 64), (50, 120)]
    for row, layout in ((0, first), (1, second)):
        expected = torch.nonzero(inputs["input_ids"][row] == adapter.image_token_id).flatten().cpu()
        assert torch.equal(torch.cat([t.positions for t in layout]), expected)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_processed_coordinates_without_recorded_sizes(adapter):
    raw = adapter.processor(images=[IMAGES[1]], text=[adapter.prompt("what", 1)], return_tensors="pt")
    (tokens,) = adapter.visual_layout(raw, 0)
    size = adapter.model.config.vision_config.image_size
    assert tokens.extra["coords"] == "processed" and tokens.image_size == (size, size)


def test_forward_and_generate(adapter, inputs):
    kwargs = adapter.model_inputs(inputs)
    with torch.no_grad():
        logits = adapter.model(**kwargs).logits
        out = adapter.model.generate(**kwargs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert logits.shape == (*inputs["input_ids"].shape, adapter.model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3
    assert int(out.max()) < len(adapter.processor.tokenizer)


def test_save_and_load_give_identical_logits(adapter, inputs, tmp_path):
    from transformers import AutoModelForImageTextToText

    from egokit.models.processors import load_processor

    adapter.model.save_pretrained(tmp_path)
    adapter.processor.save_pretrained(tmp_path)
    processor = load_processor(tmp_path, adapter.model.config.model_type)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    again = PaliGemmaAdapter(model, processor)
    inputs2 = again.prepare(list(IMAGES), again.prompt("answer en what is this", 2))
    assert inputs2.keys() == inputs.keys()
    for key in inputs:
        assert torch.equal(inputs[key], inputs2[key]), key
    with torch.no_grad():
        expected = adapter.model(**adapter.model_inputs(inputs)).logits
        assert torch.equal(model(**again.model_inputs(inputs2)).logits, expected)

    loading = pytest.importorskip("egokit.models.loading")
    loaded = loading.load(str(tmp_path))
    assert isinstance(loaded.adapter, PaliGemmaAdapter)
    inputs3 = loaded.adapter.prepare(list(IMAGES), loaded.adapter.prompt("answer en what is this", 2))
    with torch.no_grad():
        assert torch.equal(loaded.model(**loaded.adapter.model_inputs(inputs3)).logits, expected)
