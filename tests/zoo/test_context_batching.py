"""One context path for the zoo and Ego: a left-padded batch of evaluation prompts (memories of several sizes)
answers token for token as the same prompts one at a time, on the shipped micro VLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import egokit
from egokit.data.shapesworld import ShapesWorld
from egokit.models.context import Memory, build, build_batch
from egokit.models.generation import greedy_from_embeds, next_token_logits
from egokit.recipes.eval_vlm import generate_answers, image_rows, prompt_logits
from egokit.recipes.vlm_tasks import CAPTION_PROMPT, intro, presence_question, random_keep
from egokit.zoo import ZOO_DIR

pytestmark = pytest.mark.skipif(not (ZOO_DIR / "micro-vlm" / "config.json").is_file(),
                                reason="micro-vlm is not in the package")

TEST = ShapesWorld(seed=0, split="test")


@pytest.fixture(scope="module")
def vlm():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield egokit.load("micro-vlm", device="cpu")
    torch.set_num_threads(before)


def _prompts(vlm) -> list[list]:
    """In-context questions with memories of 0, 3, 13, 38 and 64 tokens, two memories, and captions."""
    concepts = TEST.concepts(6)
    refs = [TEST.reference_views(c, 1, clutter=bool(i % 2))[0] for i, c in enumerate(concepts)]
    queries = [TEST.concept_query(c, "positive" if i % 2 else "hard_negative", index=i) for i, c in enumerate(concepts)]
    ref_f = image_rows(vlm, [r.image for r in refs])
    qry_f = image_rows(vlm, [q.image for q in queries])
    rng = np.random.default_rng(0)
    prompts: list[list] = []
    for j, (c, size) in enumerate(zip(concepts, (0, 3, 13, 38, 64, 13))):
        head = [] if size == 0 else [ref_f[j][torch.as_tensor(random_keep(rng, 64, size / 64))], intro(c.name)]
        prompts.append([*head, qry_f[j], presence_question(c.name)])
    a, b = concepts[0], concepts[1]
    prompts.append([ref_f[0][:5], intro(a.name), ref_f[1][torch.as_tensor(random_keep(rng, 64, 0.3))], intro(b.name),
                    qry_f[1], presence_question(b.name)])
    prompts += [[qry_f[j], CAPTION_PROMPT] for j in range(2)]
    return prompts


def test_a_batch_answers_as_one_prompt_at_a_time(vlm) -> None:
    prompts = _prompts(vlm)
    pieces = [[Memory(p) if isinstance(p, torch.Tensor) else p for p in prompt] for prompt in prompts]
    batch = build_batch(vlm, pieces)
    assert len(set(batch.lengths)) >= 5  # left padding of several widths
    together = greedy_from_embeds(vlm.model, batch.embeds, batch.attention_mask, batch.position_ids, max_new_tokens=12)
    logits = prompt_logits(vlm, prompts)
    torch.testing.assert_close(logits, together.first_logits)
    words = generate_answers(vlm, prompts, max_new_tokens=12)
    tok = vlm.processor.tokenizer
    for i, p in enumerate(pieces):
        ctx = build(vlm, p)
        alone = greedy_from_embeds(vlm.model, ctx.embeds, ctx.attention_mask, ctx.position_ids, max_new_tokens=12)
        assert together.token_ids[i] == alone.token_ids[0], i
        torch.testing.assert_close(logits[i], alone.first_logits[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(next_token_logits(vlm.model, ctx.embeds), alone.first_logits)
        assert words[i] == " ".join(tok.convert_ids_to_tokens(alone.token_ids[0]))
        assert batch.input_ids[i, -len(ctx.input_ids):].tolist() == ctx.input_ids.tolist()
    assert all(w in ("yes", "no") for w in words[:7]) and len(words[-1].split()) > 3
