"""Classification tasks on ShapesWorld for prompt tuning (VTAB-1k style: about 1,000 training images).

Three tasks need spatial reasoning and one is a non-spatial control:

- ``where``:   where is the red object? (the only red one among 1–3 objects) → one of 9 cells of a 3×3
               grid over the image (its centre, cut at thirds of the side, as ShapesWorld's position words).
- ``count``:   how many objects are there? (1–4) → "1" … "4".
- ``left_of``: is the blue object left of the other object? (exactly two objects, one blue) → "no"/"yes",
               by centres; scenes whose centres are closer than `MIN_DX` px in x are skipped as unclear.
- ``color``:   the colour of the largest object (1–3 objects; scenes where the second largest covers
               more than `MAX_AREA_RATIO` of the largest one's pixels are skipped) → one of 7 colours.

Images come from `ShapesWorld(seed, split)`: a task's training set is split "train" of the data seed,
its test set split "test" of *another* seed (`seed + TEST_SEED_OFFSET`), so no scene layout is shared.
Scenes are drawn in order from a fixed stream and those a task skips are left out, so a data set is a
pure function of (task, seed, split, n).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from egokit.data.scenes import Scene
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import COLORS
from egokit.errors import InputError

TEST_SEED_OFFSET = 1000
MIN_DX = 3.0
MAX_AREA_RATIO = 0.8
CELLS = tuple(f"{r} {c}" for r in ("top", "middle", "bottom") for c in ("left", "center", "right"))


def cell_of(center: tuple[float, float], size: int) -> int:
    """Index (row·3 + col) of the 3×3 cell holding a point; the image side is cut at size/3 and 2·size/3."""
    x, y = center
    col = 0 if x < size / 3 else (2 if x >= 2 * size / 3 else 1)
    row = 0 if y < size / 3 else (2 if y >= 2 * size / 3 else 1)
    return row * 3 + col


def _where(scene: Scene) -> int | None:
    red = [o for o in scene.objects if o.color == "red"]
    if len(red) != 1:
        return None
    return cell_of(red[0].center, scene.image.shape[0])


def _count(scene: Scene) -> int | None:
    return len(scene.objects) - 1 if scene.objects else None


def _left_of(scene: Scene) -> int | None:
    if len(scene.objects) != 2:
        return None
    blue = [o for o in scene.objects if o.color == "blue"]
    if len(blue) != 1:
        return None
    other = next(o for o in scene.objects if o is not blue[0])
    dx = other.center[0] - blue[0].center[0]
    if abs(dx) < MIN_DX:
        return None
    return int(dx > 0)


def _largest_color(scene: Scene) -> int | None:
    if not scene.objects:
        return None
    by_area = sorted(scene.objects, key=lambda o: o.area, reverse=True)
    if len(by_area) > 1 and by_area[1].area > MAX_AREA_RATIO * by_area[0].area:
        return None
    return COLORS.index(by_area[0].color)


@dataclass(frozen=True)
class Task:
    """One classification task: how scenes are drawn and labelled.

    name, question, classes: what it asks and the class names (label i is `classes[i]`).
    spatial:  whether the answer depends on where things are (the control task's does not).
    labeler:  scene → label, or None to skip the scene.
    min_objects, max_objects: the scene generator's range; `require`: attribute values one object must
    have (drawn with `ShapesWorld.scene_with`), or None for plain scenes.
    """

    name: str
    question: str
    classes: tuple[str, ...]
    spatial: bool
    labeler: Callable[[Scene], int | None]
    min_objects: int = 1
    max_objects: int = 3
    require: tuple[tuple[str, str], ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def world(self, seed: int, split: str) -> ShapesWorld:
        return ShapesWorld(seed=seed, size=64, patch=8, split=split, min_objects=self.min_objects,
                           max_objects=self.max_objects)

    def label(self, scene: Scene) -> int | None:
        """The scene's label, or None when the task skips it."""
        return self.labeler(scene)

    def scenes(self, seed: int, split: str, n: int) -> tuple[list[Scene], np.ndarray]:
        """The first `n` usable scenes of (seed, split) and their labels (int64)."""
        if n < 1:
            raise InputError(f"need at least one scene, got n={n}")
        world = self.world(seed, split)
        scenes: list[Scene] = []
        labels: list[int] = []
        i = 0
        while len(scenes) < n:
            if i > 50 * n + 1000:  # pragma: no cover - every task accepts most scenes
                raise InputError(f"task {self.name!r} found only {len(scenes)} usable scenes in {i} draws")
            scene = world.scene_with(i, dict(self.require)) if self.require else world.scene(i)
            i += 1
            y = self.label(scene)
            if y is not None:
                scenes.append(scene)
                labels.append(y)
        return scenes, np.asarray(labels, dtype=np.int64)


TASKS: dict[str, Task] = {
    "where": Task("where", "where is the red object? (3×3 cell)", CELLS, True, _where,
                  require=(("color", "red"),)),
    "count": Task("count", "how many objects are there?", ("1", "2", "3", "4"), True, _count,
                  min_objects=1, max_objects=4),
    "left_of": Task("left_of", "is the blue object left of the other object?", ("no", "yes"), True, _left_of,
                    min_objects=2, max_objects=2, require=(("color", "blue"),)),
    "color": Task("color", "what colour is the largest object?", COLORS, False, _largest_color),
}
SPATIAL_TASKS = tuple(name for name, t in TASKS.items() if t.spatial)


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
