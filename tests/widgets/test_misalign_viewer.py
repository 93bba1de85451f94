"""MisalignmentViewer driven headlessly: set `.value` on the word selector and the ε slider, read what it renders."""

from __future__ import annotations

from unittest import mock

import pytest
from egokit.widgets import MisalignmentViewer

import egokit.methods.misalign as misalign
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import InputError
from egokit.models.tiny import build_tiny

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def setup():
    scene = ShapesWorld(seed=0, split="test").scene(3)
    return build_tiny("clip"), scene


def test_viewer_scores_once_and_rerenders_on_word_and_eps(setup):
    model, scene = setup
    with mock.patch.object(misalign, "score", wraps=misalign.score) as spy:
        v = MisalignmentViewer(model, scene.image, scene.caption)
        assert spy.call_count == 1
        r = v.result
        assert v.word.value == r.most_negative
        assert [o[1] for o in v.word.options] == list(range(len(r.words)))
        first_png = bytes(v.image.value)
        assert first_png.startswith(PNG)

        other = next(i for i in range(len(r.words)) if i != v.word.value)
        v.word.value = other
        assert bytes(v.image.value).startswith(PNG) and bytes(v.image.value) != first_png

        html_before = v.words_html.value
        v.eps.value = v.eps.min  # flag nothing: every score is above the slider's minimum
        assert v.current().flagged == []
        assert v.words_html.value != html_before and "underline" not in v.words_html.value
        v.eps.value = 0.0
        assert v.current().flagged == [i for i in range(len(r.words)) if r.eligible[i] and float(r.scores[i]) < 0]

        # pressing Score again for the same caption uses the cache; a new caption calls the library once more
        v.score_button.click()
        assert spy.call_count == 1
        v.caption.value = "a large blue solid cross ."
        v.score_button.click()
        assert spy.call_count == 2 and v.result.caption == "a large blue solid cross ."


def test_static_png_twin_follows_the_view(setup):
    model, scene = setup
    v = MisalignmentViewer(model, scene.image, scene.caption)
    png = v._repr_png_()
    assert png.startswith(PNG)
    v.word.value = 0
    assert v._repr_png_() != png
    assert v.to_image().size == v.result.with_eps(v.eps.value).to_image(0).size


def test_viewer_of_a_saved_result_needs_no_model(setup, tmp_path):
    model, scene = setup
    r = misalign.score(model, scene.image, scene.caption)
    back = type(r).load(r.save(tmp_path / "r.safetensors"))
    v = MisalignmentViewer(result=back)
    assert v.score_button.disabled and bytes(v.image.value).startswith(PNG)
    v.caption.value = "something else"
    v.run()
    assert "no model" in v.status.value


def test_errors_show_in_the_status_line(setup):
    model, scene = setup
    v = MisalignmentViewer(model, scene.image, scene.caption)
    v.caption.value = "   "
    v.score_button.click()
    assert "empty" in v.status.value
    with pytest.raises(InputError):
        MisalignmentViewer()
