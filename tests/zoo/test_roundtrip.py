"""A checkpoint saved to disk loads the same way through transformers and through `egokit.load`, and the
soft-visual-token context the zoo trains and evaluates with (`egokit.models.context`) is exactly LLaVA's own
path."""

from __future__ import annotations

import numpy as np
import torch
from transformers import LlavaForConditionalGeneration

import egokit
from egokit.data.shapesworld import ShapesWorld
from egokit.models.adapters.llava import build_tiny_llava as build
from egokit.models.context import Slot, assemble, token_ids
from egokit.models.loading import from_model
from egokit.recipes.clip import to_pixels
from egokit.recipes.eval_vlm import answer_words, image_rows, prompt_logits


def _inputs(processor, image: np.ndarray, question: str):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True)
    return processor(images=[image], text=text, return_tensors="pt")


def test_tiny_llava_saved_loads_identically_both_ways(tmp_path):
    model, processor = build(seed=3)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    image = ShapesWorld(seed=0).scene(0).image
    enc = _inputs(processor, image, "what color is the circle ?")
    with torch.no_grad():
        ref = model(**enc).logits
        direct = LlavaForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32).eval()
        lm = egokit.load(tmp_path, device="cpu")
        a = direct(**enc).logits
        enc2 = _inputs(lm.processor, image, "what color is the circle ?")
        b = lm.model(**enc2).logits
    assert torch.equal(enc["input_ids"], enc2["input_ids"])
    assert torch.allclose(a, ref, atol=1e-5)
    assert torch.equal(a, b)


def test_assembled_memories_match_pixel_values_path():
    model, processor = build(seed=1, vision_feature_layer=1)
    lm = from_model(model, processor, name="tiny-llava")
    image = ShapesWorld(seed=0).scene(2).image
    question = "is there a red circle ?"
    enc = _inputs(processor, image, question)
    ids, _ = token_ids(lm, [Slot(64), question])
    assert enc["input_ids"][0].tolist() == ids
    with torch.no_grad():
        px = to_pixels(image[None], torch.device("cpu"))
        assert torch.allclose(px, enc["pixel_values"], atol=1e-6)
        feats = image_rows(lm, [image])
        assert feats.shape == (1, 64, model.config.text_config.hidden_size)
        ref = model(**enc).logits
        emb = assemble(model, torch.tensor([ids]), [feats[0]], model.config.image_token_id)
        got = model(inputs_embeds=emb, attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits
        assert torch.allclose(got, ref, atol=1e-5)
        # batched, left-padded, with a memory subset: the last position matches the unpadded run
        keep = torch.tensor([0, 5, 9, 63])
        prompts = [[feats[0], question], [feats[0][keep], "this is bix .", feats[0], question]]
        batched = prompt_logits(lm, prompts)
        single = prompt_logits(lm, prompts[1:])
        assert torch.allclose(batched[1], single[0], atol=1e-4)
        assert torch.allclose(batched[0], ref[0, -1], atol=1e-4)


def test_answer_words_stop_at_eos():
    _, processor = build(seed=0)
    tok = processor.tokenizer
    ids = [tok.pad_token_id, *tok.encode("red circle", add_special_tokens=False), tok.eos_token_id, 7]
    assert answer_words(tok, ids) == "red circle"
