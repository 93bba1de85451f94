"""LLaVA-OneVision adapter on a tiny random model: anyres tiles, unpadding, downsampling, newlines,
multi-image mode, boxes vs pixels, save/load."""

from __future__ import annotations

import pytest
import torch

import egokit
from egokit.models.adapters.llava_onevision import LlavaOnevisionAdapter, LlavaOnevisionImageOnlyProcessor
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

QUESTION = "what color is the circle ?"


@pytest.fixture(scope="module")
def tiny():
    return from_model(*build_tiny("llava_onevision"))


def embeds_fed_to_language_model(lm, inputs) -> torch.Tensor:
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


def check_row(lm, inputs, row, images):
    """Layout of one batch row against the processor's token count, the model's features and what the
    language model received; returns the layout."""
    adapter = lm.adapter
    ids = inputs["input_ids"][row]
    layout = adapter.visual_layout(inputs, row)
    features = adapter.image_features(inputs)
    embeds = embeds_fed_to_language_model(lm, inputs)[row]
    n_image_tokens = int((ids == adapter.image_token_id).sum())
    n_newlines = sum(len(t.extra["newline_positions"]) for t in layout)
    assert sum(len(t) for t in layout) + n_newlines == n_image_tokens
    newline = lm.model.model.image_newline
    for tokens, image in zip(layout, images):
        feats = features[tokens.extra["image_index"]]
        assert feats.shape[0] == len(tokens) + len(tokens.extra["newline_positions"])
        assert (ids[tokens.positions] == adapter.image_token_id).all()
        assert (ids[tokens.extra["newline_positions"]] == adapter.image_token_id).all()
        assert tokens.feature_index.unique().numel() == len(tokens)
        torch.testing.assert_close(embeds[tokens.positions], feats[tokens.feature_index])
        for p in tokens.extra["newline_positions"]:
            torch.testing.assert_close(embeds[p], newline)
        side = lm.adapter.base_side
        assert tokens.grid == (side, side)
        assert tokens.image_size == (image.height, image.width)
    return layout


def test_structure_and_processor(tiny):
    adapter = tiny.adapter
    assert isinstance(adapter, LlavaOnevisionAdapter)
    assert isinstance(tiny.processor, LlavaOnevisionImageOnlyProcessor)
    assert type(adapter.attention_modules("language")[0]).__name__ == "Qwen2Attention"
    assert type(adapter.attention_modules("vision")[0]).__name__ == "SiglipAttention"
    assert adapter.tower_prefix_tokens == 0 and adapter.dropped_tokens == 0


def test_wide_image_tiles_and_unpadding(tiny, wide_image, boxcheck):
    inputs = tiny.adapter.prepare([wide_image], QUESTION)
    assert inputs["batch_num_images"].tolist() == [1]
    (tokens,) = check_row(tiny, inputs, 0, [wide_image])
    extra = tokens.extra
    # 48×80 → pinpoint 64×128 = 1×2 tiles = 8×16 cells; unpadding keeps 14 of 16 columns
    assert extra["patched"] and extra["tiles"] == (1, 2) and extra["tile_grid"] == (8, 14)
    assert not extra["downsampled"]
    assert len(tokens) == 64 + 8 * 14 and len(extra["newline_positions"]) == 8
    size = tokens.image_size
    boxcheck.assert_boxes_inside(tokens.boxes, size)
    base, tiles = tokens.boxes[:64], tokens.boxes[64:]
    assert boxcheck.coverage(base, size).all() and boxcheck.coverage(tiles, size).all()
    # base view: the whole image stretched to 64×64
    centres = boxcheck.patch_centres(inputs["pixel_values"][0, 0], tiny.processor.image_processor, 8, size)
    boxcheck.assert_boxes_match_pixels(base, centres, size)
    # tiles: cell (r, c) of the unpadded map is patch (r, c0 + c) of the tile canvas
    ip = tiny.processor.image_processor
    canvas = torch.cat([inputs["pixel_values"][0, 1], inputs["pixel_values"][0, 2]], dim=-1)  # 1×2 tiles
    cells = boxcheck.patch_centres(canvas, ip, 8, size).reshape(8, 16, 2)
    r0, r1, c0, c1 = extra["unpadded_cells"]
    kept = cells[r0:r1, c0:c1].reshape(-1, 2)
    boxcheck.assert_boxes_match_pixels(tiles, kept, size)


def test_large_image_is_downsampled(tiny, tall_image, boxcheck):
    inputs = tiny.adapter.prepare([tall_image], QUESTION)
    (tokens,) = check_row(tiny, inputs, 0, [tall_image])
    extra = tokens.extra
    assert extra["downsampled"] and extra["tiles"] == (4, 4)
    rows, cols = extra["tile_grid"]
    assert len(tokens) == 64 + rows * cols and len(extra["newline_positions"]) == rows
    boxcheck.assert_boxes_inside(tokens.boxes, tokens.image_size)
    assert boxcheck.coverage(tokens.boxes[64:], tokens.image_size).all()


def test_several_images_in_one_prompt_use_base_views(tiny, wide_image, tall_image, boxcheck):
    inputs = tiny.adapter.prepare([wide_image, tall_image], QUESTION)
    assert inputs["batch_num_images"].tolist() == [2]
    layout = check_row(tiny, inputs, 0, [wide_image, tall_image])
    for tokens in layout:
        assert not tokens.extra["patched"] and len(tokens) == 64
        assert len(tokens.extra["newline_positions"]) == 1
        boxcheck.assert_boxes_inside(tokens.boxes, tokens.image_size)
        assert boxcheck.coverage(tokens.boxes, tokens.image_size).all()
    # padded to a square: the wide image's top and bottom rows of patches only see padding
    area = (layout[0].boxes[:, 2] - layout[0].boxes[:, 0]) * (layout[0].boxes[:, 3] - layout[0].boxes[:, 1])
    assert area.sum() == pytest.approx(48 * 80, rel=1e-4) and (area == 0).any()


def test_batch_of_rows(tiny, wide_image, tall_image):
    inputs = tiny.adapter.prepare([wide_image, tall_image], [QUESTION, "red ?"])
    assert inputs["batch_num_images"].tolist() == [1, 1]
    (a,) = check_row(tiny, inputs, 0, [wide_image])
    (b,) = check_row(tiny, inputs, 1, [tall_image])
    assert a.extra["image_index"] == 0 and b.extra["image_index"] == 1


def test_save_and_load_roundtrip(tiny, wide_image, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.processor.save_pretrained(tmp_path)
    loaded = egokit.load(tmp_path, device="cpu")
    assert isinstance(loaded.adapter, LlavaOnevisionAdapter)
    a = tiny.adapter.prepare([wide_image], QUESTION)
    b = loaded.adapter.prepare([wide_image], QUESTION)
    for key in ("input_ids", "pixel_values", "image_sizes"):
        assert torch.equal(a[key], b[key])
    with torch.no_grad():
        la = tiny.model(**tiny.adapter.model_inputs(a)).logits
        lb = loaded.model(**loaded.adapter.model_inputs(b)).logits
    assert torch.equal(la, lb)
    assert loaded.fingerprint() == tiny.fingerprint()


def test_tile_size_not_a_multiple_of_the_patch(wide_image, boxcheck):
    """Like the real 384-pixel tiles with patch 14: the tower ignores each tile's last pixels."""
    pins = [[60, 60], [60, 120], [120, 60], [120, 120]]
    lm = from_model(*build_tiny("llava_onevision", image_size=60, image_grid_pinpoints=pins))
    inputs = lm.adapter.prepare([wide_image], QUESTION)
    (tokens,) = check_row(lm, inputs, 0, [wide_image])
    assert tokens.grid == (7, 7) and tokens.extra["tiles"] == (1, 2)
    size, ip = tokens.image_size, lm.processor.image_processor
    boxcheck.assert_boxes_inside(tokens.boxes, size)
    base = boxcheck.patch_centres(inputs["pixel_values"][0, 0], ip, 8, size)
    boxcheck.assert_boxes_match_pixels(tokens.boxes[:49], base, size)
    tiles = [
        boxcheck.patch_centres(inputs["pixel_values"][0, t], ip, 8, size).reshape(7, 7, 2) for t in (1, 2)
    ]
    cells = torch.cat(tiles, dim=1)  # 7 × 14 cells
    r0, r1, c0, c1 = tokens.extra["unpadded_cells"]
    boxcheck.assert_boxes_match_pixels(tokens.boxes[49:], cells[r0:r1, c0:c1].reshape(-1, 2), size)
