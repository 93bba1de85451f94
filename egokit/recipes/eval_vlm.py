"""Metrics of the micro VLM on the test split of `ShapesWorld(seed=WORLD_SEED)` (never trained on: test
scenes come from another random stream, test concepts are identities the train split never shows).

- `vlm.caption_attr_acc`: "describe the image ." on ordinary test scenes (1–3 objects), greedy. The
  generated caption is split into noun phrases; phrases and true objects are matched one to one so as
  to agree most; the score is the share of true attributes (size, colour(s), pattern, shape: four per
  object) stated correctly. Missing objects count as wrong; `vlm.caption_count_acc` is the share of
  captions with the right number of phrases.
- `vlm.vqa_acc`: the scenes' questions (count, colour, shape, pattern, position, yes/no), greedy
  answers compared with the truth word for word; per kind in `vlm.vqa_acc_<kind>`.
- In-context recognition: for test concepts, a reference view (alone, or cluttered with the concept's
  companions: half each) and query scenes cycling through positive, hard negative, positive, easy
  negative, positive, distractor-only (half positives). Prompt
  `[memory] this is <n> . [query] is <n> in this image ?`; the answer is "yes" when its logit beats
  "no". `vlm.incontext_f1_full`: F1 of "yes" with all 64 reference tokens as the memory;
  `_random20`: 13 tokens (20 %) drawn at random (raster order); `_oracle20`: the 13 tokens whose
  patches overlap the concept's mask most (an evaluation probe, never used in training); `_none`: no
  memory at all (name only). `vlm.hard_negative_acc`: accuracy on the hard negatives, full memory.
- `vlm.token_locality`: how much of a visual token is about its own patch. On ordinary test scenes,
  the projected visual tokens (the decoder's input embeddings) of object patches are probed linearly
  (ridge regression on one-hot labels, fit on half the scenes, scored on the other half) for the
  colour and the shape of the object under the patch. A_own reads the patch's own token; A_far reads
  the token 4 rows and 4 columns away (wrapping around, 32 px away on both axes, so never on the same
  object). token_locality = A_own − A_far (mean of colour and shape); 1 is perfectly local, 0 means a
  token says as much about a far patch as about its own. Both parts are reported.
- `vlm.subject_acc` ("describe the subject ." on reference views, exact keywords) and
  `vlm.coverage_acc` (the percentage word within ±10 of the truth) check the two questions Ego uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from egokit.data.caption_scoring import caption_score
from egokit.data.scenes import Scene
from egokit.data.shapesworld import ShapesWorld
from egokit.models.context import Memory, build_batch, tokenizer_of
from egokit.models.generation import greedy_from_embeds, next_token_logits
from egokit.models.loading import LoadedModel, from_model
from egokit.recipes.clip import to_pixels
from egokit.recipes.patch_targets import locality_probe
from egokit.recipes.vlm_tasks import (
    CAPTION_PROMPT,
    COVERAGE_PROMPT,
    SUBJECT_PROMPT,
    intro,
    oracle_keep,
    presence_question,
    random_keep,
    subject_index,
    subject_keywords,
)

#: a prompt of the micro VLM: text, or a (n_tokens, D) tensor of projected image tokens (a whole image from
#: `image_rows`, or a memory, any subset of one), put in the context as soft visual tokens
Prompt = Sequence[str | torch.Tensor]

QUERY_CYCLE = ("positive", "hard_negative", "positive", "easy_negative", "positive", "distractor_only")
MEMORY_VARIANTS = ("full", "random20", "oracle20", "none")


def image_rows(loaded: LoadedModel, images: Sequence[np.ndarray], batch: int = 64) -> torch.Tensor:
    """Projected image tokens (N, n_tokens, D) of ShapesWorld images: what the language model receives."""
    model = loaded.model
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            px = to_pixels(np.stack(images[i:i + batch]), device)
            out.append(torch.stack(loaded.adapter.image_features({"pixel_values": px.to(loaded.dtype)})))
    return torch.cat(out)


def _features(loaded: LoadedModel, scenes: list[Scene]) -> torch.Tensor:
    return image_rows(loaded, [s.image for s in scenes])


def _batch(loaded: LoadedModel, prompts: Sequence[Prompt]) -> Any:
    return build_batch(loaded, [[Memory(p) if isinstance(p, torch.Tensor) else p for p in prompt]
                                for prompt in prompts])


def prompt_logits(loaded: LoadedModel, prompts: Sequence[Prompt]) -> torch.Tensor:
    """(B, vocab) logits of the first answer token of each prompt (one left-padded batch)."""
    b = _batch(loaded, prompts)
    return next_token_logits(loaded.model, b.embeds, b.attention_mask, b.position_ids)


def generate_answers(loaded: LoadedModel, prompts: Sequence[Prompt], max_new_tokens: int = 40) -> list[str]:
    """Greedy answers of a batch of prompts, as words (`answer_words`)."""
    b = _batch(loaded, prompts)
    out = greedy_from_embeds(loaded.model, b.embeds, b.attention_mask, b.position_ids, max_new_tokens)
    tok = tokenizer_of(loaded)
    return [answer_words(tok, ids) for ids in out.token_ids]


def answer_words(tok: Any, ids: Sequence[int]) -> str:
    """Words of `ids` up to the first eos (padding and bos dropped), separated by single spaces."""
    words = []
    for i in ids:
        if i == tok.eos_token_id:
            break
        if i in (tok.pad_token_id, tok.bos_token_id):
            continue
        words.append(tok.convert_ids_to_tokens(int(i)))
    return " ".join(words)


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


# ---------------------------------------------------------------------------------------------- captions


# ---------------------------------------------------------------------------------------------- locality


def token_locality(loaded: LoadedModel, scenes: list[Scene]) -> dict[str, float]:
    """A_own, A_far and their difference (module docstring)."""
    probe = locality_probe(_features(loaded, scenes).float().cpu().numpy(), scenes)
    return {f"vlm.token_locality{k}": v for k, v in probe.items()}


# ---------------------------------------------------------------------------------------------- in-context


def _f1(pred: list[bool], truth: list[bool]) -> float:
    tp = sum(p and t for p, t in zip(pred, truth))
    fp = sum(p and not t for p, t in zip(pred, truth))
    fn = sum(t and not p for p, t in zip(pred, truth))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def incontext(loaded: LoadedModel, world: ShapesWorld, n: int, seed: int, batch: int = 32,
              step: Callable[[int], None] = lambda k: None) -> dict[str, float]:
    concepts = world.concepts(min(60, n))
    rng = np.random.default_rng([seed, 13])
    cases = []
    for i in range(n):
        c = concepts[i % len(concepts)]
        ref = world.reference_views(c, 1, clutter=bool(i % 2))[0]
        kind = QUERY_CYCLE[(i // len(concepts) + i) % len(QUERY_CYCLE)]
        query = world.concept_query(c, kind, index=i)
        k = subject_index(ref)
        keeps = {"full": None, "random20": random_keep(rng, 64, 0.2), "oracle20": oracle_keep(ref, k, 0.2)}
        cases.append((c, ref, query, kind, keeps))
    tok = tokenizer_of(loaded)
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    preds: dict[str, list[bool]] = {v: [] for v in MEMORY_VARIANTS}
    for chunk in _batches(cases, batch):
        ref_f = _features(loaded, [c[1] for c in chunk])
        qry_f = _features(loaded, [c[2] for c in chunk])
        for variant in MEMORY_VARIANTS:
            prompts = []
            for j, (c, _, _, _, keeps) in enumerate(chunk):
                head: list[Any] = []
                if variant != "none":
                    keep = keeps[variant]
                    head = [ref_f[j] if keep is None else ref_f[j][torch.as_tensor(keep)]]
                prompts.append([*head, intro(c.name), qry_f[j], presence_question(c.name)])
            logits = prompt_logits(loaded, prompts)
            preds[variant] += (logits[:, yes] > logits[:, no]).tolist()
        step(len(chunk))
    truth = [case[3] == "positive" for case in cases]
    out = {f"vlm.incontext_f1_{v}": _f1(preds[v], truth) for v in MEMORY_VARIANTS}
    out["vlm.incontext_acc_full"] = float(np.mean([p == t for p, t in zip(preds["full"], truth)]))
    for kind in ("hard_negative", "easy_negative", "distractor_only"):
        idx = [i for i, case in enumerate(cases) if case[3] == kind]
        for v in ("full", "random20", "oracle20"):
            key = "vlm.hard_negative_acc" if (kind == "hard_negative" and v == "full") else f"vlm.{kind}_acc_{v}"
            out[key] = float(np.mean([not preds[v][i] for i in idx])) if idx else float("nan")
    pos = [i for i, case in enumerate(cases) if case[3] == "positive"]
    for v in ("full", "random20", "oracle20"):
        out[f"vlm.positive_acc_{v}"] = float(np.mean([preds[v][i] for i in pos])) if pos else float("nan")
    return out


# ---------------------------------------------------------------------------------------------- all


def evaluate_vlm(model: Any, processor: Any = None, seed: int = 0, n: int = 240, world_seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """Every micro-VLM metric (module docstring); `n` sets the sample sizes, `seed` which test items.

    model: the micro VLM and its `processor`, or a `LoadedModel` (then `processor` is not needed)."""
    step = progress or (lambda k: None)
    loaded = model if isinstance(model, LoadedModel) else from_model(model, processor, name="micro-vlm")
    world = ShapesWorld(seed=world_seed, split="test")
    rng = np.random.default_rng([seed, 12])
    start = int(rng.integers(1 << 20))
    out: dict[str, float] = {}

    scenes = list(world.scenes(n // 2, start))
    correct = total = counted = 0
    for chunk in _batches(scenes, 32):
        feats = _features(loaded, chunk)
        answers = generate_answers(loaded, [[feats[j], CAPTION_PROMPT] for j in range(len(chunk))], max_new_tokens=48)
        for a, s in zip(answers, chunk):
            c, t, ok = caption_score(a, s)
            correct, total, counted = correct + c, total + t, counted + ok
        step(len(chunk))
    out["vlm.caption_attr_acc"] = correct / max(1, total)
    out["vlm.caption_count_acc"] = counted / max(1, len(scenes))

    qa = [(s, q) for s in world.scenes(n, start + n) for q in s.questions if q.kind != "coverage"]
    qa = [qa[int(i)] for i in np.sort(rng.choice(len(qa), size=min(len(qa), 2 * n), replace=False))]
    hits: dict[str, list[bool]] = {}
    for chunk in _batches(qa, 64):
        feats = _features(loaded, [s for s, _ in chunk])
        answers = generate_answers(loaded, [[feats[j], q.question] for j, (_, q) in enumerate(chunk)],
                                   max_new_tokens=6)
        for a, (_, q) in zip(answers, chunk):
            hits.setdefault(q.kind, []).append(a == q.answer)
        step(len(chunk))
    every = [h for v in hits.values() for h in v]
    out["vlm.vqa_acc"] = float(np.mean(every))
    for kind, v in sorted(hits.items()):
        out[f"vlm.vqa_acc_{kind}"] = float(np.mean(v))

    out.update(incontext(loaded, world, n, seed, step=step))

    concepts = world.concepts(min(40, n))
    refs = [world.reference_views(concepts[i % len(concepts)], 1, clutter=bool(i % 2))[0] for i in range(n // 4)]
    feats = _features(loaded, refs)
    subj = generate_answers(loaded, [[feats[j], SUBJECT_PROMPT] for j in range(len(refs))], max_new_tokens=12)
    cov = generate_answers(loaded, [[feats[j], COVERAGE_PROMPT] for j in range(len(refs))], max_new_tokens=3)
    out["vlm.subject_acc"] = float(np.mean([a == subject_keywords(r.objects[subject_index(r)])
                                            for a, r in zip(subj, refs)]))
    out["vlm.coverage_acc"] = float(np.mean([_close(a, r.coverage(subject_index(r))) for a, r in zip(cov, refs)]))
    step(len(refs))

    out.update(token_locality(loaded, list(world.scenes(max(20, n // 4), start + 2 * n))))
    step(1)
    return out


def _close(answer: str, percent: float) -> bool:
    try:
        return abs(int(answer) - percent) <= 10
    except ValueError:
        return False
