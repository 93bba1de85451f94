"""Task labels on hand-built scenes, and on generated scenes checked against their ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from egokit.data.scenes import Scene, SceneObject
from egokit.data.vocab import COLORS
from egokit.methods.sa2vp.tasks import CELLS, SPATIAL_TASKS, TASKS, TEST_SEED_OFFSET, cell_of, get_task


def _obj(color: str, center: tuple[float, float], extent: int = 12, shape: str = "square") -> SceneObject:
    """A square object of `extent` px centred at `center` (mask and box drawn by hand)."""
    mask = np.zeros((64, 64), dtype=bool)
    x0, y0 = int(center[0] - extent / 2), int(center[1] - extent / 2)
    mask[y0:y0 + extent, x0:x0 + extent] = True
    return SceneObject(shape=shape, color=color, pattern="solid", size="small" if extent < 20 else "large",
                       center=center, box=(x0, y0, x0 + extent, y0 + extent), mask=mask, extent=extent)


def _scene(*objects: SceneObject) -> Scene:
    return Scene(image=np.zeros((64, 64, 3), dtype=np.uint8), objects=list(objects), caption_tokens=(), questions=[])


def test_cells_cut_the_image_at_thirds():
    assert cell_of((5, 5), 64) == 0 and CELLS[0] == "top left"
    assert cell_of((32, 32), 64) == 4 and CELLS[4] == "middle center"
    assert cell_of((60, 10), 64) == 2 and CELLS[2] == "top right"
    assert cell_of((10, 50), 64) == 6 and CELLS[6] == "bottom left"
    assert cell_of((64 / 3 - 0.01, 0), 64) == 0 and cell_of((64 / 3, 0), 64) == 1
    assert cell_of((2 * 64 / 3, 2 * 64 / 3), 64) == 8


def test_where_labels_the_only_red_object():
    where = get_task("where")
    assert where.label(_scene(_obj("red", (10, 50)), _obj("blue", (50, 10)))) == 6           # bottom left
    assert where.label(_scene(_obj("green", (10, 10)), _obj("red", (54, 30)))) == 5          # middle right
    assert where.label(_scene(_obj("red", (10, 10)), _obj("red", (50, 50)))) is None          # two red: skipped
    assert where.label(_scene(_obj("blue", (10, 10)))) is None                                # no red: skipped


def test_count_left_of_and_largest_colour():
    count, left, colour = get_task("count"), get_task("left_of"), get_task("color")
    assert count.label(_scene(_obj("red", (10, 10)))) == 0 and count.classes[0] == "1"
    assert count.label(_scene(*[_obj("red", (10 + 14 * k, 10)) for k in range(4)])) == 3
    assert left.label(_scene(_obj("blue", (10, 30)), _obj("red", (40, 20)))) == 1             # blue is left: yes
    assert left.label(_scene(_obj("green", (10, 30)), _obj("blue", (40, 20)))) == 0           # blue is right: no
    assert left.label(_scene(_obj("blue", (30, 10)), _obj("red", (31, 50)))) is None          # too close in x
    assert left.label(_scene(_obj("blue", (10, 30)), _obj("blue", (40, 20)))) is None         # two blue
    big, small = _obj("purple", (20, 20), extent=26), _obj("yellow", (50, 50), extent=12)
    assert colour.label(_scene(small, big)) == COLORS.index("purple")
    assert colour.label(_scene(_obj("red", (15, 15), 20), _obj("blue", (45, 45), 19))) is None  # no clear largest
    assert not colour.spatial and set(SPATIAL_TASKS) == {"where", "count", "left_of"}


@pytest.mark.parametrize("name", list(TASKS))
def test_generated_data_sets_match_ground_truth(name):
    task = TASKS[name]
    scenes, labels = task.scenes(0, "train", 40)
    assert len(scenes) == 40 and labels.dtype == np.int64 and labels.max() < task.num_classes
    for scene, y in zip(scenes, labels):
        objs = scene.objects
        if name == "where":
            red = [o for o in objs if o.color == "red"]
            assert len(red) == 1
            x, yy = red[0].center
            assert CELLS[y] == ("top" if yy < 64 / 3 else "bottom" if yy >= 128 / 3 else "middle") + " " + \
                ("left" if x < 64 / 3 else "right" if x >= 128 / 3 else "center")
        elif name == "count":
            assert int(task.classes[y]) == len(objs)
        elif name == "left_of":
            blue = next(o for o in objs if o.color == "blue")
            other = next(o for o in objs if o is not blue)
            assert len(objs) == 2 and bool(y) == (blue.center[0] < other.center[0])
        else:
            assert task.classes[y] == max(objs, key=lambda o: o.area).color
    again, labels2 = task.scenes(0, "train", 40)
    assert np.array_equal(labels, labels2) and all(np.array_equal(a.image, b.image) for a, b in zip(scenes, again))
    test_scenes, _ = task.scenes(TEST_SEED_OFFSET, "test", 5)
    assert not any(np.array_equal(a.image, b.image) for a in scenes[:5] for b in test_scenes)
