"""Targets of the point head: ShapesWorld boxes per caption word, simulated mouse traces, referring expressions."""

from __future__ import annotations

import numpy as np
import pytest

from egokit.data.shapesworld import ShapesWorld
from egokit.errors import InputError
from egokit.methods.pixel.evaluation import inside
from egokit.methods.pixel.targets import (
    box_targets,
    canonical_objects,
    caption_example,
    caption_words,
    refer_example,
    referring_expressions,
    simulate_trace,
    trace_targets,
)


@pytest.fixture(scope="module")
def scenes():
    world = ShapesWorld(seed=0, split="train", min_objects=2)
    return list(world.scenes(40))


def test_canonical_caption_lists_objects_left_to_right(scenes):
    for s in scenes[:10]:
        objs = canonical_objects(s)
        xs = [o.center[0] for o in objs]
        assert xs == sorted(xs)
        words, objects = caption_words(s)
        assert objects == objs and words[0].text == "a" and words[-1].text == "."


def test_box_targets_follow_word_roles(scenes):
    s = scenes[0]
    words, objects = caption_words(s)
    boxes = box_targets(words, objects)
    assert len(boxes) == len(words)
    for w, b in zip(words, boxes):
        if w.text in (".", "of"):
            assert b is None
        elif w.role == "relation":
            a, c = objects[w.ref].box, objects[w.ref2].box
            assert b == (min(a[0], c[0]), min(a[1], c[1]), max(a[2], c[2]), max(a[3], c[3]))
        else:
            assert b == tuple(float(v) for v in objects[w.ref].box)


def test_trace_is_deterministic_inside_the_image_and_mostly_on_the_described_object(scenes):
    hits = total = 0
    for k, s in enumerate(scenes):
        words, objects = caption_words(s)
        t1 = simulate_trace(words, objects, s.size, np.random.default_rng(k))
        t2 = simulate_trace(words, objects, s.size, np.random.default_rng(k))
        assert np.array_equal(t1, t2) and t1.shape == (len(words) * 8, 2)
        assert t1.min() >= 0 and t1.max() <= s.size - 1
        boxes, _ = trace_targets(words, objects, s.size, np.random.default_rng(k))
        assert len(boxes) == len(words) and all(b is not None and b[0] < b[2] and b[1] < b[3] for b in boxes)
        for w, b in zip(words, boxes):
            if w.role in ("size", "colour", "pattern", "shape"):
                total += 1
                hits += inside(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), objects[w.ref].box)
    # noisy (lag, uneven pace, jitter) but mostly right: the paper's kind of weak supervision
    assert 0.6 < hits / total < 1.0


def test_trace_needs_words():
    with pytest.raises(InputError):
        simulate_trace([], [], 64, np.random.default_rng(0))


def test_examples(scenes):
    s = scenes[1]
    ex = caption_example(s, 3, "box")
    assert ex.prompt == "describe the image ." and ex.caption_loss and ex.image == 3
    assert " ".join(ex.words) == " ".join(w.text for w in caption_words(s)[0])
    tr = caption_example(s, 0, "trace", np.random.default_rng(0))
    assert all(b is not None for b in tr.boxes) and tr.words == ex.words
    with pytest.raises(InputError, match="mode"):
        caption_example(s, 0, "mouse")
    rng = np.random.default_rng(1)
    ref = next(e for e in (refer_example(x, 0, rng) for x in scenes) if e is not None)
    assert ref.prompt == f"where is {' '.join(ref.words)} ?" and not ref.caption_loss
    assert ref.words[0] == "the" and ref.boxes == [None] * len(ref.words)  # no per-word targets in a referral
    assert ref.last_token_box is not None and ref.answer_box is None       # only the last token's box
    scene = next(x for x in scenes if referring_expressions(x))
    one = refer_example(scene, 0, np.random.default_rng(0), answer_position=True)
    (i,) = [k for e, k in referring_expressions(scene) if e == " ".join(one.words)]
    assert one.last_token_box == one.answer_box == tuple(float(v) for v in scene.objects[i].box)
    for text, i in referring_expressions(s):
        assert text.startswith("the ") and 0 <= i < len(s.objects)
