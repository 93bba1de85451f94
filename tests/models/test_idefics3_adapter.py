"""Idefics3 / SmolVLM adapter on tiny random models: tiles + global view, layout vs. the prompt expansion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from egokit.models.adapters import load_adapters
from egokit.models.adapters.idefics3 import Idefics3Adapter
from egokit.models.tiny import build_tiny

VARIANTS = ("idefics3", "smolvlm")


def ramp(width: int, height: int) -> Image.Image:
    """Red grows left to right, green top to bottom: a pixel's colour tells where it came from."""
    x = (np.arange(width) + 0.5) / width
    y = (np.arange(height) + 0.5) / height
    rgb = np.zeros((height, width, 3), dtype=np.float64)
    rgb[..., 0] = x[None, :]
    rgb[..., 1] = y[:, None]
    rgb[..., 2] = 0.5
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


# 64×64 → 2×2 tiles + global; 120×50 → 1×2 tiles + global (longest edge 128, 64-pixel tiles)
IMAGES = (ramp(64, 64), ramp(120, 50))


@pytest.fixture(scope="module", params=VARIANTS)
def adapter(request) -> Idefics3Adapter:
    model, processor = build_tiny("idefics3", variant=request.param, longest_edge=128)
    return Idefics3Adapter(model, processor)


@pytest.fixture(scope="module")
def inputs(adapter):
    return adapter.prepare(list(IMAGES), adapter.prompt("what is this", 2))


def test_registered_for_both_model_types():
    registry = load_adapters()
    assert registry["idefics3"] is Idefics3Adapter
    assert registry["smolvlm"] is Idefics3Adapter


def test_attention_modules(adapter):
    config = adapter.model.config
    assert len(adapter.attention_modules("language")) == config.text_config.num_hidden_layers
    assert len(adapter.attention_modules("vision")) == config.vision_config.num_hidden_layers


def test_pixel_values_are_per_prompt_views(inputs):
    assert inputs["pixel_values"].shape == (1, 5 + 3, 3, 64, 64)


def test_layout_matches_prompt_expansion(adapter, inputs):
    layout = adapter.visual_layout(inputs, 0)
    assert len(layout) == 2
    ids = inputs["input_ids"][0]
    image_positions = torch.nonzero(ids == adapter.image_token_id).flatten().cpu()
    ordered = torch.cat([t.positions[t.feature_index.argsort()] for t in layout])
    assert torch.equal(ordered, image_positions)  # every image token once; fake/row/global tokens never
    per_view = adapter.processor.image_seq_len
    assert per_view == adapter.tokens_side**2
    assert [t.extra["tiles"] for t in layout] == [(2, 2), (1, 2)]
    assert [len(t) for t in layout] == [5 * per_view, 3 * per_view]
    assert [t.image_size for t in layout] == [(64, 64), (50, 120)]
    for tokens in layout:
        views = tokens.extra["views"]
        assert views[0]["kind"] == "global" and all(v["kind"] == "tile" for v in views[1:])
        assert tokens.grid == (adapter.tokens_side, adapter.tokens_side)
        assert tokens.extra["coords"] == "original"
    # the token right before each tile run names the tile; before the global run, <global-img>
    tokenizer = adapter.processor.tokenizer
    for tokens in layout:
        for k, view in enumerate(tokens.extra["views"]):
            start = int(tokens.positions[k * per_view])
            before = tokenizer.convert_ids_to_tokens([int(ids[start - 1])])[0]
            if view["kind"] == "tile":
                r, c = view["tile"]
                assert before == f"<row_{r + 1}_col_{c + 1}>"
            else:
                assert before == "<global-img>"


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


def test_boxes_cover_the_image_per_view(adapter, inputs):
    per_view = adapter.tokens_side**2
    for tokens in adapter.visual_layout(inputs, 0):
        height, width = tokens.image_size
        boxes = tokens.boxes
        assert boxes.shape == (len(tokens), 4)
        assert (boxes[:, :2] >= 0).all()
        assert (boxes[:, 2] <= width + 1e-4).all() and (boxes[:, 3] <= height + 1e-4).all()
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        global_area = area[:per_view].sum().item()
        tiles_area = area[per_view:].sum().item()
        assert global_area == pytest.approx(width * height, rel=1e-5)  # the global view covers it all
        assert tiles_area == pytest.approx(width * height, rel=1e-5)  # and so do the tiles together


def test_boxes_follow_the_pixels(adapter, inputs):
    """Each token's pixels (as the processor cut the views) show the colour of its box centre in the ramp."""
    ip = adapter.processor.image_processor
    mean = torch.tensor(ip.image_mean).view(3, 1, 1)
    std = torch.tensor(ip.image_std).view(3, 1, 1)
    n = adapter.tokens_side
    per_view = n * n
    pixels = inputs["pixel_values"][0].cpu()
    cell = pixels.shape[-1] // n
    view_offset = 0
    for tokens in adapter.visual_layout(inputs, 0):
        height, width = tokens.image_size
        for f, box in zip(tokens.feature_index.tolist(), tokens.boxes):
            view, local = divmod(f, per_view)
            i, j = divmod(local, n)
            patch = pixels[view_offset + view, :, i * cell : (i + 1) * cell, j * cell : (j + 1) * cell]
            colour = (patch * std + mean).mean(dim=(1, 2))
            cx, cy = (box[0] + box[2]).item() / 2 / width, (box[1] + box[3]).item() / 2 / height
            assert colour[0].item() == pytest.approx(cx, abs=0.03)
            assert colour[1].item() == pytest.approx(cy, abs=0.03)
        view_offset += len(tokens.extra["views"])


def test_single_view_without_splitting():
    model, processor = build_tiny("idefics3")  # longest edge 64: one 16-token view per image
    adapter = Idefics3Adapter(model, processor)
    inputs = adapter.prepare([IMAGES[1]], adapter.prompt("what", 1))
    (tokens,) = adapter.visual_layout(inputs, 0)
    assert len(tokens) == 16 == int((inputs["input_ids"] == adapter.image_token_id).sum())
    assert tokens.extra["tiles"] == (0, 0) and tokens.grid == (4, 4)
    assert tokens.boxes[-1].tolist() == pytest.approx([90.0, 37.5, 120.0, 50.0])


def test_batch_rows_with_different_image_counts(adapter):
    question = "what is this"
    inputs = adapter.prepare(
        [[IMAGES[1]], list(IMAGES)], [adapter.prompt(question, 1), adapter.prompt(question, 2)]
    )
    first, second = adapter.visual_layout(inputs, 0), adapter.visual_layout(inputs, 1)
    assert [t.extra["image_index"] for t in first] == [0]
    assert [t.extra["image_index"] for t in second] == [1, 2]
    assert [t.image_size for t in first + second] == [(50, 120), (64, 64), (50, 120)]
    for row, layout in ((0, first), (1, second)):
        expected = torch.nonzero(inputs["input_ids"][row] == adapter.image_token_id).flatten().cpu()
        got = torch.cat([t.positions[t.feature_index.argsort()] for t in layout])
        assert torch.equal(got, expected)
    with torch.no_grad():
        features = adapter.image_features(inputs)
    assert [f.shape[0] for f in features] == [len(t) for t in first + second]


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
    processor = load_processor(tmp_path, adapter.model.config.model_type)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    again = Idefics3Adapter(model, processor)
    inputs2 = again.prepare(list(IMAGES), again.prompt("what is this", 2))
    assert inputs2.keys() == inputs.keys()
    for key in inputs:
        assert torch.equal(inputs[key], inputs2[key]), key
    with torch.no_grad():
        expected = adapter.model(**adapter.model_inputs(inputs)).logits
        assert torch.equal(model(**again.model_inputs(inputs2)).logits, expected)

    loading = pytest.importorskip("egokit.models.loading")
    loaded = loading.load(str(tmp_path))
    assert isinstance(loaded.adapter, Idefics3Adapter)
    inputs3 = loaded.adapter.prepare(list(IMAGES), loaded.adapter.prompt("what is this", 2))
    with torch.no_grad():
        assert torch.equal(loaded.model(**loaded.adapter.model_inputs(inputs3)).logits, expected)
