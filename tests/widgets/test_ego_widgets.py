"""Ego widgets driven headlessly: set controls' `.value`, read the rendered PNG; static twins render too."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
import torch

from egokit.data.shapesworld import ShapesWorld
from egokit.errors import InputError

PNG = b"\x89PNG\r\n\x1a\n"
SW = ShapesWorld(seed=0, split="test")
REF = SW.reference_views(SW.concepts(1)[0], 1, clutter=True)[0]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run many times faster on one busy core
    yield
    torch.set_num_threads(before)


def _png(widget) -> bytes:
    return bytes(widget.image.value)


@functools.cache
def _model():
    from egokit.models.loading import from_model
    from egokit.models.tiny import build_tiny

    return from_model(*build_tiny("llava"), name="tiny-llava")


@pytest.fixture(scope="module")
def picker():
    from egokit.widgets import KeywordPicker

    return KeywordPicker(_model(), REF, name="bix", keywords=["red", "striped", "circle"], budget=0.2)


def test_keyword_picker_rerenders_without_the_model(picker, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    calls = []
    monkeypatch.setattr(type(model.model), "forward", lambda *a, **k: calls.append(1))
    assert [b.description for b in picker.words] == ["red", "striped", "circle"]
    assert all(b.value for b in picker.words)
    first = picker.image.value
    assert bytes(first).startswith(PNG) and picker.selected().numel() == 13
    picker.words[0].value = False
    assert _png(picker) != bytes(first)
    assert torch.equal(picker.scores(), picker.look.scores(["striped", "circle"], aggregate="mean"))
    picker.budget.value = 0.5
    assert picker.selected().numel() == 32
    picker.aggregate.value = "max"
    picker.layers.value = (picker.look.layers[0],)
    assert torch.equal(picker.scores(), picker.look.scores([1, 2], layers=[picker.look.layers[0]], aggregate="max"))
    assert "keeps 32 of 64" in picker.info.value
    for b in picker.words:
        b.value = False
    assert picker.selected().numel() == 0
    assert not calls


def test_keyword_picker_memory_and_static_twin(picker) -> None:
    for b in picker.words:
        b.value = True
    picker.budget.value = 0.25
    picker.layers.value = tuple(picker.look.layers)
    picker.aggregate.value = "mean"
    mem = picker.memory()
    assert mem.n_tokens == 16 and mem.keywords == ["red", "striped", "circle"]
    torch.testing.assert_close(mem.embeddings, picker.look.features[picker.selected()])
    assert picker._repr_png_().startswith(PNG)
    assert mem.fingerprint == _model().fingerprint()


def test_token_heatmap_from_a_look() -> None:
    from egokit.widgets import TokenHeatmap

    import egokit.methods.ego as ego

    look = ego.look_at(_model(), REF, description="a red circle .")
    view = TokenHeatmap(look)
    first = view.image.value
    assert bytes(first).startswith(PNG)
    view.layer.value = 1
    view.head.value = 0
    view.token.value = 1
    assert _png(view) != bytes(first)
    torch.testing.assert_close(view.scores(), look.attentions[1, 0, 1])
    assert view._repr_png_().startswith(PNG)


def test_token_heatmap_from_generate_and_look() -> None:
    from egokit.widgets import TokenHeatmap

    from egokit.capture.look import generate_and_look

    look = generate_and_look(_model(), REF.image, "what is this", max_new_tokens=3)
    view = TokenHeatmap(look, image=REF.image)
    assert view.attentions.shape[-1] == 64
    with pytest.raises(InputError):
        TokenHeatmap(look)


def test_memory_compare() -> None:
    from egokit.widgets import MemoryCompare

    results = {"f1": {"ego": 0.8, "uniform": 0.6, "all_tokens": 0.82}, "memory_tokens": {"ego": 13, "all_tokens": 64},
               "memory_bytes": {"ego": 9984, "all_tokens": 49152}, "answer_s": {"ego": 0.02, "all_tokens": 0.03}}
    view = MemoryCompare(results)
    first = view.image.value
    assert bytes(first).startswith(PNG)
    view.metric.value = "f1"
    assert _png(view) != bytes(first)
    view.metric.value = "all"
    assert _png(view) == bytes(first)
    assert view._repr_png_().startswith(PNG)
    from egokit.methods.ego import EgoEvaluation

    assert bytes(MemoryCompare(EgoEvaluation(results)).image.value) == bytes(first)  # what `evaluate` returns
    with pytest.raises(InputError):
        MemoryCompare({"nothing": 1})
