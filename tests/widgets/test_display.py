"""Every widget shows offline and at a fixed size: its display bundle carries a PNG beside the live view
(notebooks are saved without widget state, so nbconvert, GitHub and nbviewer show the PNG), and its picture
is shown at its own pixel size (at most `MAX_WIDTH`), never stretched to the output's width."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from IPython.core.formatters import DisplayFormatter
from PIL import Image

from egokit.data.shapesworld import ShapesWorld
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

PNG = b"\x89PNG\r\n\x1a\n"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@functools.cache
def _llava():
    return from_model(*build_tiny("llava"), name="tiny-llava")


def _scene():
    return ShapesWorld(seed=0, split="test").scene(3)


def _explorer():
    from egokit.widgets import AttentionExplorer

    image = (np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8")
    return AttentionExplorer(_llava(), image, "what color is the circle ?", max_new_tokens=3), "picture"


def _picker():
    from egokit.widgets import KeywordPicker

    return KeywordPicker(_llava(), _scene().image, name="bix", keywords=["red"], description="a red circle ."), "image"


def _heatmap():
    from egokit.widgets import TokenHeatmap

    import egokit.methods.ego as ego

    return TokenHeatmap(ego.look_at(_llava(), _scene().image, description="a red circle .")), "image"


def _compare():
    from egokit.widgets import MemoryCompare

    results = {"f1": {"ego": 0.8, "uniform": 0.6, "all_tokens": 0.82}, "memory_tokens": {"ego": 13, "all_tokens": 64},
               "memory_bytes": {"ego": 9984, "all_tokens": 49152}, "answer_s": {"ego": 0.02, "all_tokens": 0.03}}
    return MemoryCompare(results), "image"


def _misalign():
    from egokit.widgets import MisalignmentViewer

    return MisalignmentViewer(from_model(*build_tiny("clip")), _scene().image, "a red circle ."), "image"


def _locator():
    from egokit.widgets import WordLocator

    from egokit.methods.pixel.head import PointHead
    from egokit.methods.pixel.training import load_base

    base = load_base("tiny:llava", torch.device("cpu"))
    torch.manual_seed(0)
    head = PointHead(32, hidden=16, meta={"base_fingerprint": base.fingerprint()})
    return WordLocator(base, head, _scene().image, max_new_tokens=3), "image"


MAKERS = {"AttentionExplorer": _explorer, "KeywordPicker": _picker, "TokenHeatmap": _heatmap,
          "MemoryCompare": _compare, "MisalignmentViewer": _misalign, "WordLocator": _locator}


@pytest.fixture(scope="module", params=list(MAKERS))
def made(request):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield MAKERS[request.param]()
    finally:
        torch.set_num_threads(before)


def test_every_public_widget_is_checked():
    import egokit.widgets as widgets

    assert set(widgets.__all__) == set(MAKERS)


def test_display_bundle_carries_a_png_beside_the_live_view(made):
    widget, _ = made
    bundle, _ = DisplayFormatter().format(widget)
    assert WIDGET_VIEW in bundle
    assert bundle["image/png"].startswith(PNG) if isinstance(bundle["image/png"], bytes) else bundle["image/png"]


def test_the_picture_is_shown_at_a_fixed_size_no_wider_than_the_limit(made):
    from egokit.widgets.picture import MAX_WIDTH

    widget, attr = made
    picture = getattr(widget, attr)
    assert bytes(picture.value).startswith(PNG)
    width, height = (int(str(v).removesuffix("px")) for v in (picture.layout.width, picture.layout.height))
    assert 0 < width <= MAX_WIDTH and height > 0
    natural = Image.open(__import__("io").BytesIO(bytes(picture.value))).size
    assert abs(width / height - natural[0] / natural[1]) < 0.02  # scaled, never stretched
    assert width == min(natural[0], MAX_WIDTH)


def test_memory_compare_keeps_its_box_when_the_metric_changes():
    widget, _ = _compare()
    box = (widget.image.layout.width, widget.image.layout.height)
    first = bytes(widget.image.value)
    widget.metric.value = "f1"
    assert bytes(widget.image.value) != first
    assert (widget.image.layout.width, widget.image.layout.height) == box


def test_explorer_controls_sit_beside_the_picture():
    import ipywidgets as w

    widget, _ = _explorer()
    row = next(c for c in widget.children if isinstance(c, w.HBox) and widget.picture in c.children)
    controls = [c for c in row.children if c is not widget.picture][0]
    assert {widget.view, widget.layer, widget.head} <= set(controls.children)
