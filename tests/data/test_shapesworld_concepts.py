"""Personal concepts: identities, reference views, queries (hard negatives differ only in the mark),
multi-concept scenes and videos."""

from __future__ import annotations

import numpy as np
import pytest

from egokit.data.concepts import Concept
from egokit.data.holdout import DEFAULT_HOLDOUT
from egokit.data.shapesworld import QUERY_KINDS, ShapesWorld
from egokit.data.validate import scene_problems
from egokit.data.vocab import COLOR_RGB, MARK_COLOR_RGB, NAME_POOL
from egokit.errors import InputError


@pytest.fixture(scope="module")
def world() -> ShapesWorld:
    return ShapesWorld(seed=3)


@pytest.fixture(scope="module")
def concepts(world) -> list[Concept]:
    return world.concepts(12)


def the_concept(scene, concept):
    found = [o for o in scene.objects if o.name == concept.name]
    assert len(found) == 1
    return found[0]


# ---------------------------------------------------------------------------------------------- identities


def test_concepts_are_distinct_named_and_reproducible(world, concepts):
    assert len({c.name for c in concepts}) == len(concepts)
    assert all(c.name in NAME_POOL for c in concepts)
    assert len({c.identity for c in concepts}) == len(concepts)
    assert len({(c.shape, frozenset(c.colors)) for c in concepts}) == len(concepts)  # distinct looks
    assert world.concepts(5) == concepts[:5]
    assert ShapesWorld(seed=3).concepts(12) == concepts
    assert ShapesWorld(seed=4).concepts(12) != concepts
    for c in concepts:
        assert c.color != c.color2
        assert len(c.companions) == 2
        assert all(not (k.shape == c.shape and k.color in c.colors) for k in c.companions)
        assert c.to_dict()["key"] == c.key


def test_splits_never_share_a_concept(world):
    ids = {split: {c.identity for c in world.concepts(len(NAME_POOL), split=split)} for split in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    with pytest.raises(InputError):
        world.concepts(len(NAME_POOL) + 1)


def test_train_concepts_respect_the_holdout():
    sw = ShapesWorld(seed=1, holdout=DEFAULT_HOLDOUT)
    for c in sw.concepts(60):
        assert "pink" not in c.colors and c.shape != "hexagon"
        assert not (c.shape == "triangle" and "purple" in c.colors)
        for k in c.companions:
            assert k.color != "pink" and k.shape != "hexagon"
    val = sw.concepts(60, split="val")
    assert any("pink" in c.colors or c.shape == "hexagon" for c in val)


# ---------------------------------------------------------------------------------------------- references


def test_reference_views(world, concepts):
    for c in concepts:
        views = world.reference_views(c, n_views=3)
        assert len(views) == 3 and len({v.image.tobytes() for v in views}) == 3
        for v in views:
            assert scene_problems(v) == []
            assert len(v.objects) == 1 and v.contains == {c.name}
            o = the_concept(v, c)
            assert (o.shape, o.color, o.color2, o.mark, o.mark_color) == (c.shape, c.color, c.color2, c.mark, c.mark_color)
            cx, cy = o.center
            assert abs(cx - 32) <= 8 and abs(cy - 32) <= 8  # centred-ish
            cov = next(q for q in v.questions if q.kind == "coverage")
            assert abs(int(cov.answer) - v.coverage(0)) <= 5 or cov.answer == "10"
            assert any(q.question == f"is {c.name} in this image ?" and q.answer == "yes" for q in v.questions)
            assert v.personal_caption == f"{c.name} ."


def test_marks_are_visible_and_two_tone_is_real(world, concepts):
    for c in concepts:
        for v in world.reference_views(c, 2) + [world.concept_query(c, "positive", i) for i in range(4)]:
            o = the_concept(v, c)
            px = v.image[o.mask]
            mark = np.all(px == MARK_COLOR_RGB[c.mark_color], axis=1)
            assert mark.sum() >= 7
            ys, xs = np.nonzero(o.mask & np.all(v.image == MARK_COLOR_RGB[c.mark_color], axis=2))
            assert max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) >= 5  # at least 5 px across
            for col in c.colors:
                assert np.all(px == COLOR_RGB[col], axis=1).mean() > 0.2


def test_cluttered_references_show_the_companions(world, concepts):
    n_companions = []
    for c in concepts:
        for v in world.reference_views(c, 2, clutter=True):
            assert scene_problems(v) == []
            others = [o for o in v.objects if o.name is None]
            assert 1 <= len(others) <= 2
            looks = {(k.shape, k.color, k.pattern) for k in c.companions}
            assert all((o.shape, o.color, o.pattern) in looks for o in others)
            n_companions.append(len(others))
    assert set(n_companions) == {1, 2}


# ---------------------------------------------------------------------------------------------- queries


def test_query_kinds(world, concepts):
    for c in concepts[:6]:
        for i in range(4):
            q = {k: world.concept_query(c, k, i) for k in QUERY_KINDS}
            for k, s in q.items():
                assert scene_problems(s) == []
                assert s.contains == ({c.name} if k == "positive" else set())
                assert s.questions[-1].question == f"is {c.name} in this image ?"
                assert s.questions[-1].answer == ("yes" if k == "positive" else "no")
                assert len(s.objects) <= 3
            pos = the_concept(q["positive"], c)
            target = {k: next(o for o in s.objects if o.center == pos.center) for k, s in q.items()}
            easy = target["easy_negative"]
            assert easy.shape != c.shape and not set(easy.colors) & set(c.colors) and easy.mark is not None
            dis = target["distractor_only"]
            first = c.companions[0]
            assert (dis.shape, dis.color, dis.pattern) == (first.shape, first.color, first.pattern)
            shown = [(o.shape, o.color, o.pattern) for v in world.reference_views(c, 2, clutter=True)
                     for o in v.objects if o.name is None]
            assert shown.count((dis.shape, dis.color, dis.pattern)) >= 2  # it was in every cluttered view
            assert dis.mark is None and dis.color2 is None


def test_hard_negative_differs_only_in_the_mark(world, concepts):
    for c in concepts:
        for i in range(3):
            pos = world.concept_query(c, "positive", i)
            neg = world.concept_query(c, "hard_negative", i)
            o = the_concept(pos, c)
            n = next(x for x in neg.objects if x.center == o.center)
            assert (n.shape, n.color, n.color2, n.halves, n.extent) == (o.shape, o.color, o.color2, o.halves, o.extent)
            assert (n.mark, n.mark_color) != (o.mark, o.mark_color) and n.name is None
            diff = np.any(pos.image != neg.image, axis=2)
            assert diff.any()
            assert not (diff & ~o.mask).any()  # every changed pixel lies inside the object
            marks = np.all(pos.image == MARK_COLOR_RGB[o.mark_color], axis=2) | \
                np.all(neg.image == MARK_COLOR_RGB[n.mark_color], axis=2)
            assert not (diff & ~marks).any()  # ... and is a mark pixel in one of the two
            assert np.array_equal(o.mask, n.mask)
            others = [(x.shape, x.color, x.center) for x in pos.objects if x is not o]
            assert others == [(x.shape, x.color, x.center) for x in neg.objects if x is not n]


def test_query_arguments(world, concepts):
    with pytest.raises(InputError, match="unknown query kind"):
        world.concept_query(concepts[0], "negative")
    hand_made = Concept("bix", "circle", "red", "blue", "left-right", "dot", "white")
    s = world.concept_query(hand_made, "distractor_only")
    assert s.contains == set() and scene_problems(s) == []


# ---------------------------------------------------------------------------------------------- multi-concept


def test_multi_concept_scenes(world, concepts):
    group = concepts[:4]
    for i in range(10):
        for present in (None, [group[0].name, group[2].name], [False, True, False, False]):
            s = world.multi_concept_scene(group, present=present, index=i)
            assert scene_problems(s) == []
            expected = ({c.name for c in group} if present is None else
                        {c.name for c, p in zip(group, present) if p} if isinstance(present[0], bool) else set(present))
            assert s.contains == expected
            for c in group:
                qa = next(q for q in s.questions if q.question == f"is {c.name} in this image ?")
                assert qa.answer == ("yes" if c.name in expected else "no")
            for name in expected:
                assert name in s.personal_caption.split()
    with pytest.raises(InputError):
        world.multi_concept_scene(group, present=["nobody"])
    with pytest.raises(InputError):
        world.multi_concept_scene(concepts[:5])


# ---------------------------------------------------------------------------------------------- video


def test_video_frames_are_consistent(world, concepts):
    for c in concepts[:6]:
        for i in range(3):
            frames = world.video(c, n_frames=6, index=i)
            check_video(frames, c)
    frames = world.video(concepts[0], n_frames=5, present_frames=[0, 3])
    assert [bool(f.contains) for f in frames] == [True, False, False, True, False]
    frames = world.video(concepts[0], n_frames=3, present_frames=[False, True, True])
    assert [bool(f.contains) for f in frames] == [False, True, True]
    no_concept = world.video(None, n_frames=4)
    check_video(no_concept, None)
    assert all(not f.contains for f in no_concept)
    with pytest.raises(InputError):
        world.video(concepts[0], n_frames=3, present_frames=[5])
    with pytest.raises(InputError):
        world.video(None, n_frames=0)


def check_video(frames, concept):
    assert [f.frame for f in frames] == list(range(len(frames)))
    tracks: dict[int, list] = {}
    for f in frames:
        assert scene_problems(f) == []
        for o in f.objects:
            tracks.setdefault(o.track, []).append((f.frame, o))
        if concept is not None:
            yes = concept.name in f.contains
            assert f.questions[-1].question == f"is {concept.name} in this frame ?"
            assert f.questions[-1].answer == ("yes" if yes else "no")
    if concept is not None:
        assert any(concept.name in f.contains for f in frames)
    for seen in tracks.values():
        looks = {(o.shape, o.color, o.color2, o.pattern, o.mark, o.extent, o.name) for _, o in seen}
        assert len(looks) == 1  # the same object in every frame
        for (t0, a), (t1, b) in zip(seen, seen[1:]):
            if t1 == t0 + 1:  # smooth: at most 3 px per frame along each axis
                assert abs(a.center[0] - b.center[0]) <= 3 and abs(a.center[1] - b.center[1]) <= 3
        if len(seen) == len(frames) and len(frames) > 1:
            assert len({o.center for _, o in seen}) > 1  # it moves
    # a static background: pixels outside every object in two frames are identical
    free = np.ones(frames[0].image.shape[:2], dtype=bool)
    for f in frames:
        for o in f.objects:
            free &= ~o.mask
    for f in frames[1:]:
        assert np.array_equal(f.image[free], frames[0].image[free])


def test_all_concepts_extend_concepts(world):
    pool = world.all_concepts("test")
    first = world.concepts(10, split="test")
    assert [c.identity for c in pool[:10]] == [c.identity for c in first]
    assert [c.companions for c in pool[:10]] == [c.companions for c in first]
    assert len({c.identity for c in pool}) == len(pool) > len(NAME_POOL)
    train = {c.identity for c in world.all_concepts("train")}
    assert not train & {c.identity for c in pool}
