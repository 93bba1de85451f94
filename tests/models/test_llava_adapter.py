"""LLaVA-1.5 adapter on a tiny random model: layout vs the processor's expansion and the model's features,
boxes vs pixels, the class-token case, batches, generation, save/load."""

from __future__ import annotations

import pytest
import torch

import egokit
from egokit.models.adapters.llava import LlavaAdapter
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

QUESTION = "what color is the circle ?"


@pytest.fixture(scope="module")
def tiny():
    return from_model(*build_tiny("llava"))


def embeds_fed_to_language_model(lm, inputs) -> torch.Tensor:
    """The input embeddings the language model really received (image features scattered in)."""
    seen = {}

    def grab(module, args, kwargs):
        seen["embeds"] = kwargs["inputs_embeds"]

    handle = lm.adapter.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            lm.model(**lm.adapter.model_inputs(inputs))
    finally:
        handle.remove()
    return seen["embeds"]


def test_structure(tiny):
    adapter = tiny.adapter
    assert isinstance(adapter, LlavaAdapter) and adapter.is_generative
    lang = adapter.attention_modules("language")
    vis = adapter.attention_modules()  # default part
    assert lang == vis and len(lang) == tiny.config.text_config.num_hidden_layers
    assert type(lang[0]).__name__ == "LlamaAttention"
    vision = adapter.attention_modules("vision")
    assert len(vision) == tiny.config.vision_config.num_hidden_layers
    assert type(vision[0]).__name__ == "CLIPAttention"
    assert adapter.tower_prefix_tokens == 1 and adapter.dropped_tokens == 1


def test_prompt_uses_chat_template(tiny):
    text = tiny.adapter.prompt(QUESTION, n_images=2)
    assert text.count("<image>") == 2 and text.endswith("ASSISTANT:")


@pytest.mark.parametrize("n_images", [1, 2])
def test_layout_matches_processor_and_features(tiny, wide_image, tall_image, boxcheck, n_images):
    images = [wide_image, tall_image][:n_images]
    adapter = tiny.adapter
    inputs = adapter.prepare(images, QUESTION)
    ids = inputs["input_ids"][0]
    n_image_tokens = int((ids == adapter.image_token_id).sum())
    layout = adapter.visual_layout(inputs)
    features = adapter.image_features(inputs)
    assert len(layout) == len(features) == n_images
    assert sum(len(t) for t in layout) == n_image_tokens == sum(f.shape[0] for f in features)
    embeds = embeds_fed_to_language_model(tiny, inputs)[0]
    for k, (tokens, feats, image) in enumerate(zip(layout, features, images)):
        assert tokens.grid == (8, 8) and len(tokens) == 64
        assert tokens.extra["image_index"] == k
        assert (ids[tokens.positions] == adapter.image_token_id).all()
        assert torch.equal(tokens.positions, torch.arange(64) + tokens.positions[0])  # contiguous
        torch.testing.assert_close(embeds[tokens.positions], feats[tokens.feature_index])
        assert tokens.image_size == (image.height, image.width)
        boxcheck.assert_boxes_inside(tokens.boxes, tokens.image_size)
        centres = boxcheck.patch_centres(
            inputs["pixel_values"][k], tiny.processor.image_processor, 8, tokens.image_size
        )
        boxcheck.assert_boxes_match_pixels(tokens.boxes, centres, tokens.image_size)
        x0, y0, x1, y1 = tokens.extra["view"]
        assert boxcheck.coverage(tokens.boxes, tokens.image_size)[
            int(y0) + 1 : int(y1) - 1, int(x0) + 1 : int(x1) - 1
        ].all()
    assert layout[0].positions.max() < (layout[1].positions.min() if n_images == 2 else len(ids))


def test_batch_rows_with_different_image_counts(tiny, wide_image, tall_image):
    adapter = tiny.adapter
    inputs = adapter.prepare([[wide_image], [tall_image, wide_image]], ["red ?", QUESTION])
    row0, row1 = adapter.visual_layout(inputs, 0), adapter.visual_layout(inputs, 1)
    assert [t.extra["image_index"] for t in row0] == [0]
    assert [t.extra["image_index"] for t in row1] == [1, 2]
    assert row1[0].image_size == (300, 260) and row1[1].image_size == (48, 80)
    embeds = embeds_fed_to_language_model(tiny, inputs)
    features = adapter.image_features(inputs)
    for row, tokens_list in enumerate([row0, row1]):
        for tokens in tokens_list:
            feats = features[tokens.extra["image_index"]]
            torch.testing.assert_close(embeds[row, tokens.positions], feats[tokens.feature_index])


def test_full_strategy_keeps_class_token_without_box(wide_image):
    lm = from_model(*build_tiny("llava", vision_feature_select_strategy="full"))
    inputs = lm.adapter.prepare([wide_image], QUESTION)
    n_image_tokens = int((inputs["input_ids"] == lm.adapter.image_token_id).sum())
    (tokens,) = lm.adapter.visual_layout(inputs)
    (feats,) = lm.adapter.image_features(inputs)
    assert n_image_tokens == feats.shape[0] == 65 and len(tokens) == 64
    assert tokens.feature_index.tolist() == list(range(1, 65))
    assert tokens.extra["class_token_positions"].tolist() == [int(tokens.positions[0]) - 1]
    embeds = embeds_fed_to_language_model(lm, inputs)[0]
    torch.testing.assert_close(embeds[tokens.positions], feats[tokens.feature_index])


def test_pad_to_square_processor_boxes(boxcheck, wide_image):
    """LLaVA's own image processor pads to a square first; boxes of padding-only patches are empty."""
    from transformers import LlavaImageProcessorPil

    model, processor = build_tiny("llava")
    processor.image_processor = LlavaImageProcessorPil(
        do_pad=True, size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}
    )
    lm = from_model(model, processor)
    inputs = lm.adapter.prepare([wide_image], QUESTION)
    (tokens,) = lm.adapter.visual_layout(inputs)
    boxcheck.assert_boxes_inside(tokens.boxes, tokens.image_size)
    area = (tokens.boxes[:, 2] - tokens.boxes[:, 0]) * (tokens.boxes[:, 3] - tokens.boxes[:, 1])
    assert area.sum() == pytest.approx(48 * 80, rel=1e-4)
    real = area > 0.5 * area.max()
    centres = boxcheck.patch_centres(
        inputs["pixel_values"][0], processor.image_processor, 8, tokens.image_size
    )
    boxcheck.assert_boxes_match_pixels(tokens.boxes[real], centres[real], tokens.image_size)


def test_generate_runs(tiny, wide_image):
    inputs = tiny.adapter.prepare([wide_image], QUESTION)
    out = tiny.model.generate(**tiny.adapter.model_inputs(inputs), max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3


def test_save_and_load_roundtrip(tiny, wide_image, tall_image, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.processor.save_pretrained(tmp_path)
    loaded = egokit.load(str(tmp_path), device="cpu")
    assert isinstance(loaded.adapter, LlavaAdapter)
    assert loaded.adapter.prompt(QUESTION, 2) == tiny.adapter.prompt(QUESTION, 2)
    a = tiny.adapter.prepare([wide_image, tall_image], QUESTION)
    b = loaded.adapter.prepare([wide_image, tall_image], QUESTION)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    with torch.no_grad():
        la = tiny.model(**tiny.adapter.model_inputs(a)).logits
        lb = loaded.model(**loaded.adapter.model_inputs(b)).logits
    assert torch.equal(la, lb)
    assert loaded.fingerprint() == tiny.fingerprint()
    assert [t.positions.tolist() for t in loaded.adapter.visual_layout(b)] == [
        t.positions.tolist() for t in tiny.adapter.visual_layout(a)
    ]
