"""WordLocator driven headlessly: set `.value` on the word selector and the text boxes, read what it renders."""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
import torch
from egokit.widgets import WordLocator

import egokit.methods.pixel as pixel
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import InputError
from egokit.methods.pixel.head import PointHead
from egokit.methods.pixel.training import load_base

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def setup():
    base = load_base("tiny:llava", torch.device("cpu"))
    torch.manual_seed(0)
    head = PointHead(32, hidden=16, meta={"base_fingerprint": base.fingerprint()})
    return base, head, ShapesWorld(seed=0, split="test").scene(4)


def test_locates_once_then_only_rerenders_when_a_word_is_chosen(setup):
    base, head, scene = setup
    with mock.patch.object(pixel, "localize", wraps=pixel.localize) as spy:
        v = WordLocator(base, head, scene, max_new_tokens=6)
        assert spy.call_count == 1
        r = v.result
        assert [o[1] for o in v.word.options] == [None, *range(len(r.words))] and v.word.value is None
        overview = bytes(v.image.value)
        assert overview.startswith(PNG)
        v.word.value = 0
        one = bytes(v.image.value)
        assert one.startswith(PNG) and one != overview
        assert one == v._repr_png_()  # the static twin shows the same view
        v.word.value = None
        assert bytes(v.image.value) == overview
        v.caption_button.click()  # same prompt: cached
        assert spy.call_count == 1
        v.prompt.value = "what color is the circle ?"
        v.caption_button.click()
        assert spy.call_count == 2 and v.result.prompt == "what color is the circle ?"


def test_find_draws_the_referred_box(setup):
    base, head, scene = setup
    v = WordLocator(base, head, scene, max_new_tokens=4)
    with mock.patch.object(pixel, "refer", wraps=pixel.refer) as spy:
        v.expression.value = "the red circle"
        v.find_button.click()
        v.find_button.click()
        assert spy.call_count == 1
    assert v.result.kind == "refer" and "box (" in v.status.value
    assert [o[0] for o in v.word.options] == ["all words", "the", "red", "circle"]
    assert v.to_image().size == v.result.to_image().size


def test_saved_result_needs_no_model_and_errors_show_in_the_status_line(setup, tmp_path):
    base, head, scene = setup
    r = pixel.refer(base, head, scene, "the circle")
    v = WordLocator(result=type(r).load(r.save(tmp_path / "r.safetensors")))
    assert v.find_button.disabled and v.caption_button.disabled and bytes(v.image.value).startswith(PNG)
    v.expression.value = "the square"
    v.find()
    assert "no model" in v.status.value
    live = WordLocator(base, head, scene, max_new_tokens=4)
    live.expression.value = "   "
    live.find_button.click()
    assert "empty" in live.status.value
    with pytest.raises(InputError):
        WordLocator(base, None, scene)


def test_text_from_a_loaded_result_file_is_escaped(setup, tmp_path):
    base, head, scene = setup
    evil = "<img src=x onerror=alert(1)> <script>alert(2)</script>"
    r = dataclasses.replace(pixel.refer(base, head, scene, "the circle"), answer=evil, words=evil.split())
    v = WordLocator(result=type(r).load(r.save(tmp_path / "evil.safetensors")))
    assert "&lt;img src=x onerror=alert(1)&gt; &lt;script&gt;alert(2)&lt;/script&gt;" in v.status.value
    assert "<img" not in v.status.value and "<script" not in v.status.value
