"""The micro models shipped inside the package load through `egokit.load` and really know ShapesWorld."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import egokit
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import COLORS
from egokit.models.loading import ZOO_DIR
from egokit.recipes.clip_texts import zero_shot_prompts
from egokit.recipes.eval_clip import embed_images, embed_texts
from egokit.recipes.eval_vlm import generate_answers, prompt_logits
from egokit.recipes.vlm_tasks import intro, presence_question

TEST = ShapesWorld(seed=0, split="test", holdout="default")


@pytest.fixture(scope="module")
def clip():
    return egokit.load("micro-clip", device="cpu")


VLM_SHIPPED = (ZOO_DIR / "micro-vlm" / "config.json").is_file()
needs_vlm = pytest.mark.skipif(not VLM_SHIPPED, reason="micro-vlm is not in the package yet (being trained)")


@pytest.fixture(scope="module")
def vlm():
    return egokit.load("micro-vlm", device="cpu")


def test_shipped_folders_are_small_fp16_with_cards():
    total = 0
    for name in ("micro-clip", "micro-vlm") if VLM_SHIPPED else ("micro-clip",):
        folder = ZOO_DIR / name
        config = json.loads((folder / "config.json").read_text())
        assert config["dtype"] == "float16"
        card = (folder / "README.md").read_text()
        assert "python -m egokit.recipes.train" in card and "zoo eval" in card
        total += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total <= 30e6


def test_micro_clip_classifies_colours_and_matches_captions(clip):
    assert clip.dtype == torch.float32
    one = ShapesWorld(seed=0, split="test", holdout="default", min_objects=1, max_objects=1)
    scenes = [s for s in one.scenes(40, 100) if not one.is_held_out(s.objects[0])][:20]
    text = embed_texts(clip.model, clip.processor, zero_shot_prompts("color", COLORS))
    img = embed_images(clip.model, clip.processor, [s.image for s in scenes])
    pred = [COLORS[i] for i in (img @ text.t()).argmax(1).tolist()]
    assert np.mean([p == s.objects[0].color for p, s in zip(pred, scenes)]) >= 0.85

    multi = [s for s in TEST.scenes(40, 500) if not any(TEST.is_held_out(o) for o in s.objects)][:16]
    sim = embed_images(clip.model, clip.processor, [s.image for s in multi]) @ \
        embed_texts(clip.model, clip.processor, [s.caption for s in multi]).t()
    assert (sim.argmax(1) == torch.arange(len(multi))).float().mean() >= 0.6


def _features(vlm, images):
    """Projected image tokens (N, 64, D) of images through the ordinary processor."""
    px = vlm.processor(images=list(images), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return torch.stack(vlm.adapter.image_features({"pixel_values": px}))


@needs_vlm
def test_micro_vlm_answers_colour_questions(vlm):
    """48 colour questions on test scenes: right at least 0.75 of the time (chance 1/8), and the ordinary
    processor path (pixel_values + chat template) answers exactly as the zoo's inputs_embeds path."""
    assert vlm.dtype == torch.float32
    tok = vlm.processor.tokenizer
    cases = [(s, q) for s in TEST.scenes(120, 700) for q in s.questions if q.kind == "color"][:48]
    assert len(cases) == 48
    # batched through inputs_embeds (soft visual tokens, the zoo's memory path)
    feats = _features(vlm, [s.image for s, _ in cases])
    answers = generate_answers(vlm, [[feats[i], q.question] for i, (_, q) in enumerate(cases)], 4)
    assert np.mean([a == q.answer for a, (_, q) in zip(answers, cases)]) >= 0.75
    # through the ordinary processor path, one by one
    for (scene, q), batched in zip(cases[:12], answers):
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q.question}]}]
        text = vlm.processor.apply_chat_template(msgs, add_generation_prompt=True)
        enc = vlm.processor(images=[scene.image], text=text, return_tensors="pt")
        out = vlm.model.generate(**enc, max_new_tokens=4, do_sample=False)
        assert tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() == batched, q.question


@needs_vlm
def test_micro_vlm_recognises_a_personal_concept_in_context(vlm):
    """48 questions (24 held-out concepts, a positive and an easy negative each): with the reference view in
    context the answers must be right far more often than with the name alone (the shipped model: 0.75
    against 0.50; its full metrics are in its model card)."""
    tok = vlm.processor.tokenizer
    concepts = TEST.concepts(24)
    with_memory, name_only, truth = [], [], []
    for i, c in enumerate(concepts):
        ref = TEST.reference_views(c, 1)[0]
        for kind in ("positive", "easy_negative"):
            query = TEST.concept_query(c, kind, index=i)
            f = _features(vlm, [ref.image, query.image])
            with_memory.append([f[0], intro(c.name), f[1], presence_question(c.name)])
            name_only.append([f[1], presence_question(c.name)])
            truth.append(kind == "positive")

    def accuracy(prompts):
        logits = prompt_logits(vlm, prompts)
        yes = logits[:, tok.convert_tokens_to_ids("yes")] > logits[:, tok.convert_tokens_to_ids("no")]
        return np.mean([bool(p) == t for p, t in zip(yes.tolist(), truth)])

    acc, baseline = accuracy(with_memory), accuracy(name_only)
    assert acc >= 0.70 and acc >= baseline + 0.15, (acc, baseline)
