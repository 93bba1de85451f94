"""The continual few-shot protocol's data on ShapesWorld: sessions that introduce what the micro CLIP
never saw (the default held-out set H: pink, hexagons, purple triangles, orange striped objects), the
target test sets, and the control test set of attributes it already knew.

All images are single-object scenes, so every image has one unambiguous class. Session (training) images
come from the "val" split and test images from the "test" split of `ShapesWorld(seed)`, so a seed fixes
the few shots and the test images and never reuses an image between them. An object of a class never
shows a held-out value the class does not ask for (a "red" example is never a hexagon), so a session
teaches only its own attributes.

Class captions use the micro CLIP's zero-shot templates ("a photo of a {color} object .", "a photo of a
{shape} .", "a photo of a {pattern} object .") and its short-description template "a {color} {shape} .".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from egokit.data.holdout import DEFAULT_HOLDOUT, Holdout
from egokit.data.scenes import Scene
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import COLORS, PATTERNS, SHAPES
from egokit.errors import InputError
from egokit.methods.lorsu.training import SessionData

COLOR_PROMPT = "a photo of a {} object ."
SHAPE_PROMPT = "a photo of a {} ."
PATTERN_PROMPT = "a photo of a {} object ."
COMBO_PROMPT = "a {} {} ."
_MAX_DRAWS = 20_000


@dataclass(frozen=True)
class ClassSpec:
    """One class of a session: the attribute values its object must show, its caption, and whether it
    is a target class (one that involves a held-out value or combination)."""

    require: tuple[tuple[str, str], ...]
    text: str
    target: bool

    @property
    def name(self) -> str:
        return " ".join(v for _, v in self.require)


@dataclass(frozen=True)
class SessionSpec:
    """A few-shot classification task: its name and classes."""

    name: str
    classes: tuple[ClassSpec, ...]

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.classes]

    @property
    def targets(self) -> list[int]:
        return [i for i, c in enumerate(self.classes) if c.target]


def _color(c: str, holdout: Holdout) -> ClassSpec:
    return ClassSpec((("color", c),), COLOR_PROMPT.format(c), holdout.holds_out([c]))


def _shape(s: str, holdout: Holdout) -> ClassSpec:
    return ClassSpec((("shape", s),), SHAPE_PROMPT.format(s), holdout.holds_out([s]))


def _combo(c: str, s: str, holdout: Holdout) -> ClassSpec:
    return ClassSpec((("color", c), ("shape", s)), COMBO_PROMPT.format(c, s), holdout.holds_out([c, s]))


def _color_of(c: str, p: str, holdout: Holdout) -> ClassSpec:
    """The colour of an object with pattern `p` (the caption names the colour only)."""
    return ClassSpec((("color", c), ("pattern", p)), COLOR_PROMPT.format(c), holdout.holds_out([c, p]))


def default_sessions(holdout: Holdout = DEFAULT_HOLDOUT) -> list[SessionSpec]:
    """The five sessions, each introducing part of H next to the known classes it is confused with:

    1. pink:            colour of the object — pink*, red, purple, orange;
    2. hexagon:         shape — hexagon*, circle, square, diamond;
    3. purple triangle: colour and shape — purple triangle*, purple square, red triangle, blue triangle;
    4. orange striped:  colour of striped objects — orange*, red, yellow, purple (stripes are drawn in a
                        dark shade of the colour, so orange stripes look unlike any orange it saw);
    5. pink hexagon:    colour and shape — pink hexagon*, pink circle*, red hexagon*, red circle.
    (* target classes.)
    """
    h = holdout
    return [
        SessionSpec("pink", tuple(_color(c, h) for c in ("pink", "red", "purple", "orange"))),
        SessionSpec("hexagon", tuple(_shape(s, h) for s in ("hexagon", "circle", "square", "diamond"))),
        SessionSpec("purple triangle", tuple(_combo(c, s, h) for c, s in (
            ("purple", "triangle"), ("purple", "square"), ("red", "triangle"), ("blue", "triangle")))),
        SessionSpec("orange striped", tuple(_color_of(c, "striped", h) for c in ("orange", "red", "yellow", "purple"))),
        SessionSpec("pink hexagon", tuple(_combo(c, s, h) for c, s in (
            ("pink", "hexagon"), ("pink", "circle"), ("red", "hexagon"), ("red", "circle")))),
    ]


def _world(seed: int, split: str) -> ShapesWorld:
    return ShapesWorld(seed=seed, split=split, min_objects=1, max_objects=1)


def class_scenes(world: ShapesWorld, cls: ClassSpec, n: int, holdout: Holdout = DEFAULT_HOLDOUT,
                 start: int = 0) -> list[Scene]:
    """`n` single-object scenes whose object shows `cls.require` and no other held-out value."""
    req = dict(cls.require)
    out: list[Scene] = []
    i = start
    while len(out) < n:
        if i - start > _MAX_DRAWS:
            raise InputError(f"could not draw {n} scenes of class {cls.name!r}")
        scene = world.scene_with(i, req)
        i += 1
        obj = scene.objects[0]
        if not holdout.holds_out(obj.values(), ignore=req.values()):
            out.append(scene)
    return out


def session_data(processor: Any, spec: SessionSpec, shots: int, seed: int,
                 holdout: Holdout = DEFAULT_HOLDOUT) -> SessionData:
    """`shots` training images per class of a session (val split of `ShapesWorld(seed)`)."""
    if shots < 1:
        raise InputError(f"shots must be at least 1, got {shots}")
    world = _world(seed, "val")
    images, labels = [], []
    for k, cls in enumerate(spec.classes):
        for scene in class_scenes(world, cls, shots, holdout):
            images.append(scene.image)
            labels.append(k)
    return SessionData.from_images(processor, images, labels, spec.texts, name=spec.name)


def target_examples(sessions: Sequence[SessionSpec], seed: int, split: str = "val",
                    holdout: Holdout = DEFAULT_HOLDOUT) -> tuple[list[np.ndarray], list[str]]:
    """One image of every target class (for a picture) and its "session: class" title."""
    world = _world(seed, split)
    images, titles = [], []
    for spec in sessions:
        for ci in spec.targets:
            images.append(class_scenes(world, spec.classes[ci], 1, holdout)[0].image)
            titles.append(f"{spec.name}: {spec.classes[ci].name}")
    return images, titles


@dataclass
class TestSet:
    """Test images with, per task, a label (index into that task's captions; -1 where not labelled)."""

    images: list[np.ndarray]
    tasks: dict[str, list[str]]
    labels: dict[str, list[int]]


def target_set(sessions: Sequence[SessionSpec], per_class: int, seed: int,
               holdout: Holdout = DEFAULT_HOLDOUT) -> TestSet:
    """Test images of every target class of every session; task `s.name` classifies among that session's
    captions (labels only on that session's target images)."""
    world = _world(seed, "test")
    images: list[np.ndarray] = []
    owner: list[tuple[int, int]] = []
    for si, spec in enumerate(sessions):
        for ci in spec.targets:
            for scene in class_scenes(world, spec.classes[ci], per_class, holdout):
                images.append(scene.image)
                owner.append((si, ci))
    tasks = {spec.name: spec.texts for spec in sessions}
    labels = {spec.name: [ci if si == s else -1 for si, ci in owner] for s, spec in enumerate(sessions)}
    return TestSet(images, tasks, labels)


def control_set(n: int, seed: int, holdout: Holdout = DEFAULT_HOLDOUT) -> TestSet:
    """`n` single-object test scenes showing nothing held out; tasks: colour, shape and pattern among the
    values the encoder was trained on."""
    colors = [c for c in COLORS if not holdout.holds_out([c])]
    shapes = [s for s in SHAPES if not holdout.holds_out([s])]
    patterns = [p for p in PATTERNS if not holdout.holds_out([p])]
    world = _world(seed, "test")
    images, lab_c, lab_s, lab_p = [], [], [], []
    i = 0
    while len(images) < n:
        if i > _MAX_DRAWS:
            raise InputError(f"could not draw {n} control scenes")
        scene = world.scene(i)
        i += 1
        obj = scene.objects[0]
        if holdout.holds_out(obj.values()):
            continue
        images.append(scene.image)
        lab_c.append(colors.index(obj.color))
        lab_s.append(shapes.index(obj.shape))
        lab_p.append(patterns.index(obj.pattern))
    tasks = {"color": [COLOR_PROMPT.format(c) for c in colors], "shape": [SHAPE_PROMPT.format(s) for s in shapes],
             "pattern": [PATTERN_PROMPT.format(p) for p in patterns]}
    return TestSet(images, tasks, {"color": lab_c, "shape": lab_s, "pattern": lab_p})


__all__ = ["ClassSpec", "SessionSpec", "TestSet", "class_scenes", "control_set", "default_sessions",
           "session_data", "target_examples", "target_set"]
