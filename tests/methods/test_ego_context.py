"""Memories as soft visual tokens: the assembled context equals the model's own image path, and the micro
VLM's prompts are token for token what it was trained on."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from test_ego_support import quick_micro_vlm, single_thread, tiny

from egokit.methods.ego.context import Memory, Picture, build, decode, encode_image
from egokit.methods.ego.formats import MICRO

IMG = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)

@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _model_path_logits(lm, question: str) -> torch.Tensor:
    a = lm.adapter
    inputs = a.prepare([IMG], a.prompt(question, 1))
    with torch.no_grad():
        return lm.model(**a.model_inputs(inputs)).logits[0, -1]


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_context_equals_the_models_image_path(family: str) -> None:
    lm = tiny(family)
    ctx = build(lm, [Picture(encode_image(lm, IMG)), "what color is it ?"])
    with torch.no_grad():
        ours = lm.model(inputs_embeds=ctx.embeds, attention_mask=ctx.attention_mask,
                        position_ids=ctx.position_ids).logits[0, -1]
    torch.testing.assert_close(ours, _model_path_logits(lm, "what color is it ?"), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_memory_slots_hold_their_rows(family: str) -> None:
    lm = tiny(family)
    enc = encode_image(lm, IMG)
    rows = enc.features[[0, 2, 5]]
    ctx = build(lm, [Memory(rows), "this is bix .", Picture(enc), "is bix here ?"])
    assert len(ctx.memory_positions) == 1 and ctx.memory_positions[0].numel() == 3
    torch.testing.assert_close(ctx.embeds[0, ctx.memory_positions[0]], rows)
    torch.testing.assert_close(ctx.embeds[0, ctx.image_positions[0]], enc.features)
    assert ctx.input_ids[ctx.memory_positions[0]].eq(lm.adapter.image_token_id).all()
    assert ctx.text.count(lm.adapter.image_token) == 2
    if family == "qwen2_vl":
        assert ctx.position_ids.shape == (3, 1, ctx.length)
        # memory tokens are text positions (the same on the three axes)
        pos = ctx.position_ids[:, 0, ctx.memory_positions[0]]
        assert torch.equal(pos[0], pos[1]) and torch.equal(pos[1], pos[2])


def test_llava_whole_memory_equals_the_image() -> None:
    lm = tiny("llava")
    enc = encode_image(lm, IMG)
    a = build(lm, [Picture(enc), "this is bix ."])
    b = build(lm, [Memory(enc.features), "this is bix ."])
    assert torch.equal(a.input_ids, b.input_ids)
    torch.testing.assert_close(a.embeds, b.embeds)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_cached_greedy_decoding_matches_generate(family: str) -> None:
    lm = tiny(family)
    a = lm.adapter
    inputs = a.prepare([IMG], a.prompt("describe the image", 1))
    with torch.no_grad():
        ref = lm.model.generate(**a.model_inputs(inputs), max_new_tokens=6, do_sample=False)
    want = ref[0, inputs["input_ids"].shape[1]:].tolist()
    ctx = build(lm, [Picture(encode_image(lm, IMG)), "describe the image"])
    got = decode(lm, ctx, max_new_tokens=6).token_ids
    assert got == want[: len(got)] and len(got) > 0


def test_micro_prompt_is_what_the_micro_vlm_was_trained_on() -> None:
    from egokit.recipes.prompting import Slot, assemble, encode

    lm = quick_micro_vlm()
    enc = encode_image(lm, IMG)
    mem = enc.features[[1, 3, 4, 9]]
    pieces = [Memory(mem), MICRO.introduce("bix"), Picture(enc), MICRO.question("bix")]
    ctx = build(lm, pieces)
    ids, _ = encode(lm.processor.tokenizer, [Slot(4), "this is bix .", Slot(64), "is bix in this image ?"])
    assert ctx.input_ids.tolist() == ids
    with torch.no_grad():
        want = assemble(lm.model, torch.tensor([ids]), [mem, enc.features])
    torch.testing.assert_close(ctx.embeds, want)
