"""Memories as soft visual tokens (`egokit.models.context`, Ego's contexts): the assembled context equals
the model's own image path, greedy decoding from it equals `generate`, and the micro VLM's prompts are
token for token the layout it was trained on."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from test_ego_support import quick_micro_vlm, single_thread, tiny

from egokit.methods.ego import MICRO
from egokit.models.context import Memory, Picture, Slot, build, build_batch, encode_image, token_ids
from egokit.models.generation import greedy_from_embeds

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
    got = greedy_from_embeds(lm.model, ctx.embeds, ctx.attention_mask, ctx.position_ids, max_new_tokens=6)
    assert got.token_ids[0] == want[: len(got.token_ids[0])] and len(got.token_ids[0]) > 0


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_a_left_padded_batch_answers_as_one_context_at_a_time(family: str) -> None:
    lm = tiny(family)
    enc = encode_image(lm, IMG)
    prompts = [[Memory(enc.features[:2]), "this is bix .", Picture(enc), "is bix here ?"],
               [Picture(enc), "what color is it ?"],
               [Memory(enc.features[[0, 3, 5, 6, 7]]), "this is dax .", Memory(enc.features[:1]), "this is bix .",
                Picture(enc), "is dax here ?"]]
    batch = build_batch(lm, prompts)
    assert len(set(batch.lengths)) == 3 and batch.attention_mask.sum(1).tolist() == batch.lengths
    together = greedy_from_embeds(lm.model, batch.embeds, batch.attention_mask, batch.position_ids, max_new_tokens=5)
    for i, pieces in enumerate(prompts):
        ctx = build(lm, pieces)
        alone = greedy_from_embeds(lm.model, ctx.embeds, ctx.attention_mask, ctx.position_ids, max_new_tokens=5)
        assert together.token_ids[i] == alone.token_ids[0]
        torch.testing.assert_close(together.first_logits[i], alone.first_logits[0], atol=1e-4, rtol=1e-4)
        assert batch.input_ids[i, -len(ctx.input_ids):].tolist() == ctx.input_ids.tolist()


def test_micro_prompt_is_what_the_micro_vlm_was_trained_on() -> None:
    """`USER: [4 memory tokens] this is bix . [64 image tokens] is bix in this image ? ASSISTANT:`, word by word
    (bos first), with the memory rows and the image's projector outputs at the image-token positions."""
    lm = quick_micro_vlm()
    tok = lm.processor.tokenizer
    enc = encode_image(lm, IMG)
    mem = enc.features[[1, 3, 4, 9]]
    pieces = [Memory(mem), MICRO.introduce("bix"), Picture(enc), MICRO.question("bix")]
    ctx = build(lm, pieces)

    def words(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    image = [tok.image_token_id]
    want = [tok.bos_token_id, *words("user :"), *image * 4, *words("this is bix ."), *image * 64,
            *words("is bix in this image ?"), *words("assistant :")]
    assert ctx.input_ids.tolist() == want
    assert token_ids(lm, [Slot(4), "this is bix .", Slot(64), "is bix in this image ?"])[0] == want
    torch.testing.assert_close(ctx.embeds[0, ctx.memory_positions[0]], mem)
    torch.testing.assert_close(ctx.embeds[0, ctx.image_positions[0]], enc.features)
    text = ctx.embeds[0, ctx.input_ids != tok.image_token_id]
    torch.testing.assert_close(text, lm.model.get_input_embeddings()(ctx.input_ids[ctx.input_ids != tok.image_token_id]))
