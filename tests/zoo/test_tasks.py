"""The micro VLM's training mixture, the CLIP's texts, per-patch targets and the metric helpers."""

from __future__ import annotations

import numpy as np

from egokit.data.caption_scoring import caption_score, parse_phrases
from egokit.data.concept_pool import split_concepts
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import NAME_POOL, WORDS
from egokit.recipes.clip_texts import match_matrix, sample_text, zero_shot_prompts
from egokit.recipes.eval_vlm import _f1
from egokit.recipes.patch_targets import ALL_TARGETS, TARGET_CLASSES, patch_targets
from egokit.recipes.vlm_tasks import (
    Mixture,
    Visual,
    canonical_caption,
    oracle_keep,
    random_keep,
    subject_keywords,
)


def _examples(seed: int, step: int, n: int = 24):
    world = ShapesWorld(seed=0, split="train")
    mix = Mixture(world, seed)
    rng = np.random.default_rng([seed, 3, step])
    images: list[np.ndarray] = []
    single = [mix.single(rng, images) for _ in range(n)]
    incontext = [mix.incontext(rng, images, 0.5) for _ in range(n)]
    return single, incontext, images


def test_mixture_is_deterministic_and_uses_the_vocabulary():
    a = _examples(1, 5)
    b = _examples(1, 5)
    assert [e.answer for e in a[0] + a[1]] == [e.answer for e in b[0] + b[1]]
    assert all(np.array_equal(x, y) for x, y in zip(a[2], b[2]))
    vocab = set(WORDS)
    for ex in a[0] + a[1]:
        for piece in ex.pieces:
            if isinstance(piece, str):
                assert set(piece.split()) <= vocab
        assert set(ex.answer.split()) <= vocab, ex.answer


def test_incontext_memories_are_random_raster_subsets_and_names_bind_per_example():
    _, incontext, images = _examples(2, 0, n=60)
    sizes, names = [], set()
    for ex in incontext:
        visuals = [p for p in ex.pieces if isinstance(p, Visual)]
        memories, query = visuals[:-1], visuals[-1]
        assert query.keep is None and query.match is not None and query.match.shape == (64,)
        for m in memories:
            assert m.match is None
            if m.keep is not None:
                assert np.all(np.diff(m.keep) > 0) and 6 <= len(m.keep) <= 64
                sizes.append(len(m.keep))
        names |= {w for p in ex.pieces if isinstance(p, str) for w in p.split() if w in NAME_POOL}
        if ex.task in ("recognise", "multi"):
            assert ex.answer in ("yes", "no")
    assert len(set(sizes)) > 5 and len(names) > 20
    assert {ex.task for ex in incontext} == {"recognise", "multi", "personal"}
    assert any(ex.weight > 1 for ex in incontext)  # hard negatives weighted up


def test_oracle_keep_prefers_the_object_and_random_keep_does_not_look():
    world = ShapesWorld(seed=0, split="test")
    concept = world.concepts(1)[0]
    ref = world.reference_views(concept, 1)[0]
    keep = oracle_keep(ref, 0, 0.2)
    _, cover = ref.patch_labels()
    score = cover[0].ravel()
    assert len(keep) == 13 and np.all(np.diff(keep) > 0)
    assert score[keep].min() >= np.sort(score)[-13]  # the 13 most-overlapping patches
    r = random_keep(np.random.default_rng(0), 64, 0.2)
    assert len(r) == 13 and np.all(np.diff(r) > 0)
    assert score[keep].sum() > score[r].sum()


def test_patch_targets_follow_the_objects():
    world = ShapesWorld(seed=0, split="test")
    concept = world.concepts(1)[0]
    ref = world.reference_views(concept, 1)[0]
    t = patch_targets(ref)
    assert set(t) == set(ALL_TARGETS) and set(TARGET_CLASSES) < set(t)
    labels, _ = ref.patch_labels()
    on = labels.ravel() >= 0
    assert np.all(t["shape"][on] > 0) and np.all(t["shape"][~on] == 0)
    assert (t["mark"] > 0).sum() >= 1  # the concept's mark lies under some patch


def test_clip_texts_and_targets():
    world = ShapesWorld(seed=0, split="train", holdout="default")
    scenes = list(world.scenes(16))
    rng = np.random.default_rng(0)
    texts = [sample_text(s, i, rng) for i, s in enumerate(scenes)]
    m = match_matrix(scenes, texts)
    assert m.shape == (16, 16) and np.all(m[np.arange(16), np.arange(16)])
    assert zero_shot_prompts("color", ["red"]) == ["a photo of a red object ."]


def test_split_concepts_are_disjoint_between_splits():
    world = ShapesWorld(seed=0, split="train")
    train = {c.identity for c in split_concepts(world)}
    test = {c.identity for c in split_concepts(world, "test")}
    assert len(train) > 1000 and not train & test
    assert {c.identity for c in world.concepts(20, split="test")} <= test


def test_caption_scoring_and_f1():
    scene = ShapesWorld(seed=0, split="test").scene(4)
    truth = canonical_caption(scene)
    correct, total, count_ok = caption_score(truth, scene)
    assert correct == total == 4 * len(scene.objects) and count_ok
    assert parse_phrases("a large red striped circle left of a small blue solid square .")[1]["shape"] == "square"
    assert caption_score("a large", scene)[0] < total
    assert _f1([True, False, True], [True, True, False]) == 0.5
    concept = ShapesWorld(seed=0, split="test").concepts(1)[0]
    ref = ShapesWorld(seed=0, split="test").reference_views(concept, 1)[0]
    assert subject_keywords(ref.objects[0]).endswith(f"with a {concept.mark_color} {concept.mark}")
