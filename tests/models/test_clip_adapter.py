"""CLIP and SigLIP adapters on tiny random models: structure, layout, boxes, features, save/load."""

from __future__ import annotations

import pytest
import torch

import egokit
from egokit.errors import InputError
from egokit.models.adapters.clip import ClipAdapter, SiglipAdapter
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

FAMILIES = ["clip", "siglip"]


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    model, processor = build_tiny(request.param)
    return from_model(model, processor)


def test_adapter_class_and_parts(tiny):
    expected = {"clip": ClipAdapter, "siglip": SiglipAdapter}[tiny.model_type]
    assert type(tiny.adapter) is expected
    assert tiny.adapter.parts == ("text", "vision")
    assert not tiny.adapter.is_generative
    for part in ("text", "vision"):
        modules = tiny.adapter.attention_modules(part)
        assert len(modules) == getattr(tiny.config, f"{part}_config").num_hidden_layers
        assert all(type(m).__name__.endswith("Attention") for m in modules)
    with pytest.raises(InputError):
        tiny.adapter.attention_modules("language")


def test_layout_matches_vision_sequence_and_features(tiny, wide_image, tall_image, boxcheck):
    adapter = tiny.adapter
    inputs = adapter.prepare([wide_image, tall_image], ["a red circle", "two blue squares"])
    out = tiny.model(**adapter.model_inputs(inputs))
    assert out.logits_per_image.shape == (2, 2)
    vision = tiny.model.vision_model(pixel_values=inputs["pixel_values"])
    seq_len = vision.last_hidden_state.shape[1]
    features = adapter.image_features(inputs)
    for b, image in enumerate([wide_image, tall_image]):
        (tokens,) = adapter.visual_layout(inputs, b)
        n = len(tokens)
        assert tokens.grid == (8, 8) and n == 64
        assert n == seq_len - adapter.vision_prefix_tokens
        assert tokens.positions.tolist() == list(range(adapter.vision_prefix_tokens, seq_len))
        assert features[b].shape[0] == n and torch.equal(tokens.feature_index, torch.arange(n))
        assert tokens.image_size == (image.height, image.width)
        boxcheck.assert_boxes_inside(tokens.boxes, tokens.image_size)
        # the boxes tile exactly the part of the image the processor kept
        x0, y0, x1, y1 = tokens.extra["view"]
        area = ((tokens.boxes[:, 2] - tokens.boxes[:, 0]) * (tokens.boxes[:, 3] - tokens.boxes[:, 1])).sum()
        assert area == pytest.approx((x1 - x0) * (y1 - y0), rel=1e-4)
        centres = boxcheck.patch_centres(
            inputs["pixel_values"][b], tiny.processor.image_processor, 8, tokens.image_size
        )
        boxcheck.assert_boxes_match_pixels(tokens.boxes, centres, tokens.image_size)


def test_clip_crop_and_siglip_stretch(tiny, wide_image):
    inputs = tiny.adapter.prepare([wide_image], "a")
    (tokens,) = tiny.adapter.visual_layout(inputs)
    if tiny.model_type == "clip":
        # 48×80 → shortest side 64 → 64×106, center crop 64: x from 21/106·80 to 85/106·80
        assert tokens.extra["view"] == pytest.approx((21 * 80 / 106, 0.0, 85 * 80 / 106, 48.0))
        assert tokens.positions[0] == 1  # after the class token
    else:
        assert tokens.extra["view"] == (0.0, 0.0, 80.0, 48.0)
        assert tokens.boxes[0].tolist() == pytest.approx([0.0, 0.0, 10.0, 6.0])


def test_image_features_are_patch_embeddings(tiny, wide_image):
    inputs = tiny.adapter.prepare([wide_image], None)
    (features,) = tiny.adapter.image_features(inputs)
    if tiny.model_type == "clip":
        # the class token through the same layers is CLIP's image embedding
        states = tiny.model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
        cls = tiny.model.visual_projection(tiny.model.vision_model.post_layernorm(states[:, 0]))
        embedding = tiny.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        torch.testing.assert_close(cls, embedding)
        assert features.shape == (64, tiny.config.projection_dim)
    else:
        assert features.shape == (64, tiny.config.vision_config.hidden_size)


def test_attention_columns_line_up_with_positions(tiny, wide_image):
    model, processor = build_tiny(tiny.model_type, attn_implementation="eager")
    lm = from_model(model, processor)
    inputs = lm.adapter.prepare([wide_image], None)
    out = model.vision_model(pixel_values=inputs["pixel_values"], output_attentions=True)
    (tokens,) = lm.adapter.visual_layout(inputs)
    attn = out.attentions[-1]
    assert attn.shape[-1] == len(tokens) + lm.adapter.vision_prefix_tokens
    assert int(tokens.positions.max()) == attn.shape[-1] - 1


def test_text_only_and_too_long_caption(tiny):
    inputs = tiny.adapter.prepare(None, ["a red circle", "a"])
    out = tiny.model.get_text_features(**tiny.adapter.model_inputs(inputs))
    assert out.pooler_output.shape[0] == 2
    with pytest.raises(InputError, match="at most"):
        tiny.adapter.prepare(None, " ".join(["red"] * 100))


def test_save_and_load_roundtrip(tiny, wide_image, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.processor.save_pretrained(tmp_path)
    loaded = egokit.load(tmp_path, device="cpu")
    assert type(loaded.model) is type(tiny.model) and type(loaded.adapter) is type(tiny.adapter)
    a = tiny.adapter.prepare([wide_image], ["a red circle", "blue"])
    b = loaded.adapter.prepare([wide_image], ["a red circle", "blue"])
    for key in ("input_ids", "pixel_values"):
        assert torch.equal(a[key], b[key])
    with torch.no_grad():
        la = tiny.model(**tiny.adapter.model_inputs(a)).logits_per_image
        lb = loaded.model(**loaded.adapter.model_inputs(b)).logits_per_image
    assert torch.equal(la, lb)
    assert loaded.fingerprint() == tiny.fingerprint()
    other = from_model(*build_tiny(tiny.model_type, seed=1))
    assert other.fingerprint() != tiny.fingerprint()
