"""Real-geometry models (`build_tiny(family, geometry="real")`) on real photographs.

Each family's real-geometry model has a published checkpoint's image and processor settings with small
widths. On scikit-image's photographs (and a wide and a tall crop) it must give:
(a) the checkpoint's documented number of visual tokens per image — the expected numbers below are written
    from the model cards' constants and the processors' documented rules, not by calling the code under test;
(b) a visual layout whose boxes tile each view of the image (every pixel once per view), inside the image;
(c) attention capture equal to eager attention at that sequence length;
(d) `egokit.explore` and Ego's `remember` end to end.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
import torch
from skimage import data as skdata

import egokit.methods.ego as ego
from egokit.capture.engine import capture
from egokit.methods.explore import explore
from egokit.models.adapters.base import DUAL_ENCODER, REAL_BUILDERS, TINY_BUILDERS, RealCheckpoint
from egokit.models.loading import from_model
from egokit.models.tiny import build_real, build_tiny, real_checkpoint, real_checkpoints

#: every real checkpoint the kit mirrors (a family's name, or a variant's: SmolVLM is the Idefics3 family)
NAMES = ["clip", "siglip", "llava", "llava_onevision", "qwen2_vl", "idefics3", "smolvlm", "paligemma"]
GENERATIVE = [n for n in NAMES if n not in ("clip", "siglip")]
CHECKPOINTS = {
    "clip": "openai/clip-vit-base-patch32",
    "siglip": "google/siglip-base-patch16-224",
    "llava": "llava-hf/llava-1.5-7b-hf",
    "llava_onevision": "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
    "qwen2_vl": "Qwen/Qwen2-VL-2B-Instruct",
    "idefics3": "HuggingFaceM4/Idefics3-8B-Llama3",
    "smolvlm": "HuggingFaceTB/SmolVLM-256M-Instruct",
    "paligemma": "google/paligemma-3b-pt-224",
}
QUESTION = "describe the image ."


@functools.cache
def photos() -> dict[str, np.ndarray]:
    """scikit-image's photographs: astronaut 512×512, coffee 400×600, chelsea 300×451, and two crops of the
    astronaut, wide (180×512) and tall (512×160)."""
    astronaut = skdata.astronaut()
    return {
        "astronaut": astronaut,
        "coffee": skdata.coffee(),
        "chelsea": skdata.chelsea(),
        "wide": np.ascontiguousarray(astronaut[150:330]),
        "tall": np.ascontiguousarray(astronaut[:, 176:336]),
    }


@functools.cache
def real(name: str) -> Any:
    """The real-geometry model mirroring checkpoint `name`, as a LoadedModel (built once)."""
    model, processor = build_real(name)
    return from_model(model, processor, name=f"real-{name}")


@functools.cache
def prepared(name: str, photo: str) -> Any:
    adapter = real(name).adapter
    image = photos()[photo]
    if adapter.has(DUAL_ENCODER):
        return adapter.prepare([image], "a photo")
    return adapter.prepare([image], adapter.prompt(QUESTION, 1))


# ------------------------------------------------------------------ documented token counts (model cards)

#: fixed-resolution checkpoints: (input side / patch side)² tokens per image, whatever the image's size
FIXED = {
    "clip": (224 // 32) ** 2,  # ViT-B/32 at 224: 7×7 = 49 patches, plus a class token in the sequence
    "siglip": (224 // 16) ** 2,  # 14×14 = 196, no class token
    "llava": (336 // 14) ** 2,  # CLIP ViT-L/14-336: 24×24 = 576 after the class token is dropped
    "paligemma": (224 // 14) ** 2,  # SigLIP/14 at 224: 256 image tokens, first in the prompt
}


def qwen2_vl_tokens(h: int, w: int, factor: int = 28, min_pixels: int = 3136, max_pixels: int = 12845056) -> int:
    """Qwen2-VL's smart resize (model card / preprocessor_config): each side rounded to a multiple of
    patch 14 × merge 2 = 28, the pixel count kept in [min_pixels, max_pixels]; one token per 28×28 block."""
    hb, wb = round(h / factor) * factor, round(w / factor) * factor
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb, wb = max(factor, math.floor(h / beta / factor) * factor), max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return (hb // factor) * (wb // factor)


def idefics3_views(h: int, w: int, longest: int, tile: int) -> tuple[int, int]:
    """Idefics3 / SmolVLM image splitting: the longest edge resized to `longest` (the other side kept to the
    aspect ratio and made even), both sides raised to multiples of the tile, then (rows, cols) tiles; a global
    view is added when there is more than one tile."""
    if w >= h:
        nw, nh = longest, int(longest / (w / h))
        nh += nh % 2
        aspect = nw / nh
        nw = math.ceil(nw / tile) * tile
        nh = math.ceil(int(nw / aspect) / tile) * tile
    else:
        nh, nw = longest, int(longest * (w / h))
        nw += nw % 2
        aspect = nw / nh
        nh = math.ceil(nh / tile) * tile
        nw = math.ceil(int(nh * aspect) / tile) * tile
    return nh // tile, nw // tile


def idefics3_tokens(h: int, w: int, longest: int, tile: int, per_view: int) -> int:
    rows, cols = idefics3_views(h, w, longest, tile)
    views = rows * cols + 1 if rows * cols > 1 else 1
    return views * per_view


#: LLaVA-OneVision's image_grid_pinpoints: 384 × (1..6) on each side
ONEVISION_PINPOINTS = [(384 * r, 384 * c) for r in range(1, 7) for c in range(1, 7)]


def onevision_tokens(h: int, w: int, side: int = 27, max_tiles: int = 9) -> int:
    """LLaVA-OneVision anyres_max_9: the base view (27×27 = 729 tokens of a 384 tile, patch 14) + the tiles of
    the best pinpoint resolution as one token map, unpadded back to the image's aspect ratio, shrunk when it
    holds more than 9 tiles' worth, + one newline token per row of that map."""
    best, best_fit, best_waste = None, -1, math.inf
    for ph, pw in ONEVISION_PINPOINTS:  # the resolution that keeps most of the image, then wastes least
        scale = min(pw / w, ph / h)
        fit = min(int(h * scale) * int(w * scale), h * w)
        waste = ph * pw - fit
        if fit > best_fit or (fit == best_fit and waste < best_waste):
            best, best_fit, best_waste = (ph, pw), fit, waste
    rows, cols = side * best[0] // 384, side * best[1] // 384
    if w / h > cols / rows:
        pad = (rows - int(round(h * cols / w, 7))) // 2
        rows -= 2 * pad
    else:
        pad = (cols - int(round(w * rows / h, 7))) // 2
        cols -= 2 * pad
    ratio = math.sqrt(rows * cols / (max_tiles * side**2))
    if ratio > 1.1:
        rows, cols = int(rows // ratio), int(cols // ratio)
    return side * side + rows * cols + rows


def expected_tokens(name: str, h: int, w: int) -> int:
    if name in FIXED:
        return FIXED[name]
    if name == "qwen2_vl":
        return qwen2_vl_tokens(h, w)
    if name == "idefics3":
        return idefics3_tokens(h, w, longest=4 * 364, tile=364, per_view=(364 // 14 // 2) ** 2)  # 169 per view
    if name == "smolvlm":
        return idefics3_tokens(h, w, longest=4 * 512, tile=512, per_view=(512 // 16 // 4) ** 2)  # 64 per view
    if name == "llava_onevision":
        return onevision_tokens(h, w)
    raise KeyError(name)


#: the counts on the astronaut (512×512), written out: image tokens in the prompt (patch tokens for CLIP/SigLIP)
ASTRONAUT = {"clip": 49, "siglip": 196, "llava": 576, "paligemma": 256, "qwen2_vl": 18 * 18,
             "idefics3": 17 * 169, "smolvlm": 17 * 64, "llava_onevision": 729 + 54 * 54 + 54}


def test_every_family_has_a_real_geometry_naming_its_checkpoint():
    assert set(REAL_BUILDERS) == set(TINY_BUILDERS)
    assert {n: c.checkpoint for n, c in real_checkpoints().items()} == CHECKPOINTS
    for name in NAMES:
        shape = real_checkpoint(name)
        assert isinstance(shape, RealCheckpoint)
        for tower in (shape.text, shape.vision):
            assert tower.hidden_size > 256 and tower.num_hidden_layers >= 12 and tower.num_attention_heads >= 8
    assert real_checkpoint("llava").text.num_hidden_layers == 32  # Llama-2-7B
    assert real_checkpoint("qwen2_vl").text.num_key_value_heads == 2
    with pytest.raises(ValueError, match="geometry"):
        build_tiny("llava", geometry="huge")


@pytest.mark.parametrize("name", NAMES)
def test_visual_token_count_is_the_checkpoints(name):
    lm = real(name)
    adapter = lm.adapter
    counts = {}
    for photo, image in photos().items():
        h, w = image.shape[:2]
        inputs = prepared(name, photo)
        layout = adapter.visual_layout(inputs, 0)
        assert len(layout) == 1
        if adapter.has(DUAL_ENCODER):
            n = len(layout[0])
            prefix = 1 if name == "clip" else 0  # CLIP's class token comes first; SigLIP has none
            assert layout[0].positions.tolist() == list(range(prefix, prefix + n))
            with torch.no_grad():
                hidden = adapter.module("vision")(pixel_values=inputs["pixel_values"]).last_hidden_state
            assert hidden.shape[1] == prefix + n
        else:
            ids = inputs["input_ids"][0]
            n = int((ids == adapter.image_token_id).sum())
        assert n == expected_tokens(name, h, w), (photo, (h, w))
        counts[photo] = n
    assert counts["astronaut"] == ASTRONAUT[name]
    if name == "paligemma":  # image tokens first, then bos
        ids = prepared(name, "chelsea")["input_ids"][0]
        assert (ids[:256] == adapter.image_token_id).all() and ids[256] == adapter.processor.tokenizer.bos_token_id


def test_pixel_bounds_and_tiles_follow_the_checkpoints_processors():
    """The processed pixels themselves: LLaVA 336², OneVision 384² tiles, Qwen2-VL 14-pixel patches of a
    28-multiple image, Idefics3 364² and SmolVLM 512² views, PaliGemma 224²."""
    assert tuple(prepared("llava", "coffee")["pixel_values"].shape[-2:]) == (336, 336)
    assert tuple(prepared("paligemma", "coffee")["pixel_values"].shape[-2:]) == (224, 224)
    assert tuple(prepared("llava_onevision", "coffee")["pixel_values"].shape[-2:]) == (384, 384)
    assert tuple(prepared("idefics3", "coffee")["pixel_values"].shape[-2:]) == (364, 364)
    assert tuple(prepared("smolvlm", "coffee")["pixel_values"].shape[-2:]) == (512, 512)
    qwen = prepared("qwen2_vl", "coffee")  # 400×600 → 392×588 → 28×42 patches of 14 px
    assert qwen["image_grid_thw"].tolist() == [[1, 28, 42]]
    assert qwen["pixel_values"].shape == (28 * 42, 3 * 2 * 14 * 14)


def test_qwen2_vl_pixel_bounds_are_the_checkpoints():
    """Below 3136 pixels the image is scaled up, above 12845056 scaled down (the rule, not a crop)."""
    from PIL import Image

    adapter = real("qwen2_vl").adapter
    small = photos()["astronaut"][200:240, 200:240]  # 40×40 → 56×56: 2×2 tokens
    big = np.asarray(Image.fromarray(photos()["coffee"]).resize((4400, 3300)))  # 14.5 M pixels
    for image, tokens in ((small, 4), (big, qwen2_vl_tokens(3300, 4400))):
        inputs = adapter.prepare([image], adapter.prompt(QUESTION, 1))
        assert int((inputs["input_ids"][0] == adapter.image_token_id).sum()) == tokens
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert (h * 14) * (w * 14) <= 12845056 < (3300 // 28 * 28) * (4400 // 28 * 28)


def test_onevision_large_image_is_shrunk_to_nine_tiles_worth(boxcheck):
    """A 1600×1600 image picks the 5×5-tile pinpoint (135×135 tokens); anyres_max_9 shrinks the map to
    about 81×81 (80×80 after rounding down)."""
    from PIL import Image

    adapter = real("llava_onevision").adapter
    big = np.asarray(Image.fromarray(photos()["astronaut"]).resize((1600, 1600)))
    inputs = adapter.prepare([big], adapter.prompt(QUESTION, 1))
    n = int((inputs["input_ids"][0] == adapter.image_token_id).sum())
    assert n == onevision_tokens(1600, 1600) == 729 + 80 * 80 + 80  # 135 // (135 / 81) rounds down to 80
    (tokens,) = adapter.visual_layout(inputs, 0)
    assert tokens.extra["downsampled"] and tokens.extra["tile_grid"] == (80, 80) and len(tokens) == 729 + 80 * 80
    boxcheck.assert_boxes_inside(tokens.boxes, (1600, 1600))


# ------------------------------------------------------------------------------------------ (b) layout


def cover_count(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) int: how many boxes hold each pixel's centre (same rule as the shared `coverage` helper)."""
    h, w = size
    b = boxes.to(torch.float64)
    x0 = torch.ceil(b[:, 0] - 0.5).clamp(0, w).long()
    x1 = torch.ceil(b[:, 2] - 0.5).clamp(0, w).long()
    y0 = torch.ceil(b[:, 1] - 0.5).clamp(0, h).long()
    y1 = torch.ceil(b[:, 3] - 0.5).clamp(0, h).long()
    keep = (x1 > x0) & (y1 > y0)
    x0, x1, y0, y1 = x0[keep], x1[keep], y0[keep], y1[keep]
    diff = torch.zeros(h + 1, w + 1, dtype=torch.long)
    one = torch.ones_like(x0)
    diff.index_put_((y0, x0), one, accumulate=True)
    diff.index_put_((y0, x1), -one, accumulate=True)
    diff.index_put_((y1, x0), -one, accumulate=True)
    diff.index_put_((y1, x1), one, accumulate=True)
    return diff.cumsum(0).cumsum(1)[:h, :w]


def region_mask(view: tuple[float, float, float, float], size: tuple[int, int]) -> torch.Tensor:
    return cover_count(torch.tensor([view]), size) == 1


def views_of(name: str, tokens: Any) -> list[tuple[str, torch.Tensor]]:
    """The token boxes of each view of one image: the base view, then (if any) the tiles together."""
    n_base = tokens.grid[0] * tokens.grid[1]
    if name in ("idefics3", "smolvlm") and tokens.extra["tiles"] != (0, 0):
        return [("global", tokens.boxes[:n_base]), ("tiles", tokens.boxes[n_base:])]
    if name == "llava_onevision":
        return [("base", tokens.boxes[:n_base]), ("tiles", tokens.boxes[n_base:])]
    return [("view", tokens.boxes)]


@pytest.mark.parametrize("name", NAMES)
def test_layout_tiles_every_view_once(name, boxcheck):
    adapter = real(name).adapter
    for photo, image in photos().items():
        size = image.shape[:2]
        (tokens,) = adapter.visual_layout(prepared(name, photo), 0)
        assert tokens.image_size == size and tokens.extra["coords"] == "original"
        boxcheck.assert_boxes_inside(tokens.boxes, size)
        rows, cols = tokens.grid
        if name == "qwen2_vl":
            assert rows * cols == qwen2_vl_tokens(*size)
        else:
            side = {"clip": 7, "siglip": 14, "llava": 24, "paligemma": 16, "llava_onevision": 27,
                    "idefics3": 13, "smolvlm": 8}[name]
            assert (rows, cols) == (side, side)
        # the part of the image the model sees: all of it, except what CLIP's center crop cuts away
        seen = region_mask(tokens.extra["view"], size)
        if name not in ("clip", "llava"):
            assert seen.all()
        if name == "llava_onevision":
            check_onevision_views(tokens, size, photo)
            continue
        for label, boxes in views_of(name, tokens):
            count = cover_count(boxes, size)
            assert (count[~seen] == 0).all() and (count[seen] == 1).all(), (photo, label)
        if name == "llava" and photo == "chelsea":  # the counting rule agrees with the shared coverage helper
            some = tokens.boxes[::37]
            assert torch.equal(cover_count(some, size) > 0, boxcheck.coverage(some, size))


def check_onevision_views(tokens: Any, size: tuple[int, int], photo: str) -> None:
    """OneVision's 384-pixel views hold 27 patches of 14 pixels (378 px): the last 6 pixels of every view
    belong to no patch, in the vision tower as in the boxes. The base view covers the image's first 378/384
    once; the tiles never overlap (no shrinking here) and leave out at most those seams plus one cell at each
    unpadded edge."""
    h, w = size
    base, tiles = (boxes for _, boxes in views_of("llava_onevision", tokens))
    count = cover_count(base, size)
    covered = region_mask((0.0, 0.0, w * 378 / 384, h * 378 / 384), size)
    assert (count[covered] == 1).all() and (count[~covered] == 0).all(), photo
    count = cover_count(tiles, size)
    assert not tokens.extra["downsampled"] and int(count.max()) == 1, photo
    (bh, bw), (rows, cols) = tokens.extra["best_resolution"], tokens.extra["tiles"]
    scale = min(bh / h, bw / w)  # original → canvas pixels
    missed_x = (cols * 6 + 2 * 14) / (w * scale)
    missed_y = (rows * 6 + 2 * 14) / (h * scale)
    assert float((count == 0).float().mean()) <= missed_x + missed_y, photo


def test_layout_boxes_follow_the_pixels_at_real_geometry(boxcheck):
    """LLaVA-1.5's 336 crop and SigLIP's 224 stretch: each box's centre is where its patch's pixels came from."""
    for name, patch in (("llava", 14), ("siglip", 16)):
        adapter = real(name).adapter
        image = boxcheck.coordinate_image(300, 451)
        text = "a photo" if adapter.has(DUAL_ENCODER) else adapter.prompt(QUESTION, 1)
        inputs = adapter.prepare([image], text)
        (tokens,) = adapter.visual_layout(inputs, 0)
        ip = adapter.processor.image_processor
        centres = boxcheck.patch_centres(inputs["pixel_values"][0], ip, patch, (300, 451))
        boxcheck.assert_boxes_match_pixels(tokens.boxes, centres, (300, 451))


# ---------------------------------------------------------------------------------- (c) capture is exact


def eager(model: Any, **inputs: Any) -> Any:
    """A forward pass with eager attention and `output_attentions` (as tests/capture/test_families.py)."""
    model.set_attn_implementation("eager")
    try:
        return model(**inputs, output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")


@pytest.mark.parametrize("name", GENERATIVE)
def test_language_capture_equals_eager_at_real_sequence_length(name):
    lm = real(name)
    inputs = prepared(name, "astronaut")
    (tokens,) = lm.adapter.visual_layout(inputs, 0)
    model_inputs = lm.adapter.model_inputs(inputs)
    seq = model_inputs["input_ids"].shape[1]
    assert seq > ASTRONAUT[name]
    rows = [seq - 2, seq - 1]
    with torch.no_grad():
        with capture(lm, queries=rows, keys=tokens.positions, part="language") as cap:
            lm.model(**model_inputs)
        ref = eager(lm.model, **model_inputs).attentions
    assert len(cap.attentions) == len(ref) == lm.adapter.num_layers("language")
    for layer, att in enumerate(ref):
        assert att.shape[-1] == seq
        torch.testing.assert_close(cap[layer], att[:, :, rows][..., tokens.positions], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["clip", "siglip", "llava"])
def test_vision_capture_equals_eager_at_real_sequence_length(name):
    lm = real(name)
    pixels = prepared(name, "chelsea")["pixel_values"]
    tower = lm.adapter.module("vision")
    with torch.no_grad():
        with capture(lm, part="vision", queries=[0, 5]) as cap:
            tower(pixel_values=pixels)
        tower.set_attn_implementation("eager")
        try:
            ref = tower(pixel_values=pixels, output_attentions=True).attentions
        finally:
            tower.set_attn_implementation("sdpa")
    n = {"clip": 50, "siglip": 196, "llava": 577}[name]
    for layer, att in enumerate(ref):
        assert att.shape[-1] == n
        torch.testing.assert_close(cap[layer], att[:, :, [0, 5]], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------- (d) methods end to end


@pytest.mark.parametrize("name", ["llava", "qwen2_vl", "smolvlm"])
def test_explore_on_a_real_geometry_model(name):
    lm = real(name)
    result = explore(lm, photos()["chelsea"], QUESTION, max_new_tokens=2)
    n = len(result.look.layout[0])
    assert n == expected_tokens(name, 300, 451)
    assert 1 <= len(result.tokens) <= 2
    for view in ("attention", "gradient"):
        scores = result.scores(0, view)
        assert scores.shape == (n,) and torch.isfinite(scores).all()
    assert result.memory.seq_len == len(result.look.input_ids)
    assert result._repr_png_().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["llava", "qwen2_vl", "llava_onevision"])
def test_ego_remember_on_a_real_geometry_model(name):
    lm = real(name)
    mem = ego.remember(lm, photos()["chelsea"], "bix", keywords=["cat"], budget=16)
    view = mem.views[0]
    n = len(lm.adapter.visual_layout(prepared(name, "chelsea"), 0)[0])
    assert view.scores.shape == (n,) and view.boxes.shape == (n, 4)
    assert mem.embeddings.shape == (16, lm.model.get_input_embeddings().embedding_dim)
    assert torch.all(view.selected[1:] > view.selected[:-1])
