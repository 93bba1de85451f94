"""remember / ask / calibrate_layers plumbing on tiny random LLaVA, Qwen2-VL and Idefics3 models (shapes and
layout; no quality claim), the baselines behind the same API, and no gradient step in `remember`."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from test_ego_support import quick_micro_vlm, single_thread, tiny

import egokit
import egokit.methods.ego as ego
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import CapabilityError, InputError, MemoryFileError

SW = ShapesWorld(seed=0, split="test")
CONCEPTS = SW.concepts(3)
REFS = SW.reference_views(CONCEPTS[0], 2, clutter=True)
QUERY = SW.concept_query(CONCEPTS[0], "positive", 0)
TOKENS = {"llava": 64, "qwen2_vl": 16, "idefics3": 16}

@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def test_public_entry_point() -> None:
    assert egokit.ego is sys.modules["egokit.methods.ego"]
    assert callable(egokit.ego.remember) and callable(egokit.ego.ask)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3"])
def test_remember_and_ask(family: str) -> None:
    lm = tiny(family)
    n = TOKENS[family]
    name = CONCEPTS[0].name
    mem = ego.remember(lm, REFS, name, budget=0.25)
    k = round(0.25 * n)
    width = lm.model.get_input_embeddings().weight.shape[1]
    assert mem.embeddings.shape == (2 * k, width)
    assert mem.budget == [k, k] and len(mem.views) == 2
    assert mem.fingerprint == lm.fingerprint() and mem.description and mem.keywords
    for view in mem.views:
        assert view.scores.shape == (n,) and view.boxes.shape == (n, 4)
        assert torch.all(view.selected[1:] > view.selected[:-1])
        assert view.grid[0] * view.grid[1] == n
    # the memory rows are the projector outputs of the chosen tokens of each view
    enc = ego.encode_image(lm, REFS[1].image)
    torch.testing.assert_close(mem.embeddings[k:], enc.features[mem.views[1].selected].cpu())

    other = ego.remember(lm, SW.reference_views(CONCEPTS[1])[0], CONCEPTS[1].name, budget=2)
    bank = ego.MemoryBank([mem, other])
    answer = ego.ask(lm, bank, QUERY.image, f"is {name} in this image ?", max_new_tokens=3)
    assert answer.concepts == [name, CONCEPTS[1].name]
    assert answer.memory_tokens == 2 * k + 2
    assert 0.0 <= answer.p_yes <= 1.0 and isinstance(answer.text, str)
    assert answer.prompt.count(lm.adapter.image_token) == 3

    frames = [f.image for f in SW.video(CONCEPTS[0], n_frames=3)]
    video = ego.ask(lm, bank, frames, f"is {name} in this image ?", max_new_tokens=1)
    assert video.p_yes is not None
    if ego.format_for(lm).video == "per_frame":
        assert len(video.frames) == 3
    else:
        assert video.prompt.count(lm.adapter.image_token) == 2 + 3


@pytest.mark.parametrize("selection", ["uniform", "random", "oracle", "all", "keywords"])
def test_baselines_share_the_api(selection: str) -> None:
    lm = tiny("llava")
    mem = ego.remember(lm, REFS[0], "bix", selection=selection, budget=0.2, seed=1)
    expected = {"uniform": 13, "random": 13, "oracle": 13, "all": 64, "keywords": 0}[selection]
    assert mem.n_tokens == expected and mem.selection == selection
    if selection == "oracle":
        mask = ego.subject_mask(REFS[0], CONCEPTS[0].name)
        uniform = ego.remember(lm, REFS[0], "bix", selection="uniform", budget=0.2)
        assert ego.selection_precision(mem, [mask]) > 2 * ego.selection_precision(uniform, [mask])
    if selection == "keywords":
        assert mem.keywords and mem.embeddings.shape[0] == 0
        answer = ego.ask(lm, mem, QUERY.image, "is bix in this image ?", max_new_tokens=1)
        assert answer.memory_tokens == 0 and "bix" in answer.prompt


def test_keywords_and_max_aggregation() -> None:
    lm = tiny("llava")
    mem = ego.remember(lm, REFS[0], "bix", keywords=["red", "circle"], aggregate="max", budget=5)
    assert mem.keywords == ["red", "circle"] and mem.description == "red circle" and mem.n_tokens == 5
    look = ego.look_at(lm, REFS[0], keywords=["red", "circle"])
    assert look.keywords == ["red", "circle"]
    torch.testing.assert_close(look.scores(aggregate="max"), mem.views[0].scores)
    assert not torch.equal(look.scores(["red"]), look.scores(["circle"]))


def test_dynamic_budget_is_capped() -> None:
    lm = tiny("llava")
    mem = ego.remember(lm, REFS[0], "bix", budget=0.2, dynamic_budget=True)
    assert mem.coverage_answer is not None
    assert 1 <= mem.n_tokens <= 13


def test_no_gradient_step_in_remember(monkeypatch: pytest.MonkeyPatch) -> None:
    lm = tiny("llava")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}

    def no_backward(*args, **kwargs):
        raise AssertionError("remember must not run a backward pass")

    monkeypatch.setattr(torch.Tensor, "backward", no_backward)
    monkeypatch.setattr(torch.autograd, "backward", no_backward)
    mem = ego.remember(lm, REFS, "bix", budget=0.2)
    assert not mem.embeddings.requires_grad
    assert all(p.grad is None for p in lm.model.parameters())
    after = lm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_calibration_is_cached_and_used() -> None:
    lm = tiny("qwen2_vl")
    views = [SW.reference_views(c)[0] for c in CONCEPTS[:2]]
    cal = ego.calibrate_layers(lm, views, keep=1)
    assert len(cal.layers) == 1 and sorted(cal.ranking) == [0, 1]
    assert all(0.0 <= p <= 1.0 for p in cal.precision.values())
    assert ego.calibrated_layers(lm) == cal.layers
    mem = ego.remember(lm, REFS[0], "bix")
    assert mem.layers == cal.layers
    with pytest.raises(InputError):
        ego.calibrate_layers(lm, [QUERY.image])  # no mask


def test_prefilter_keeps_named_and_similar_concepts() -> None:
    lm = tiny("llava")
    mems = [ego.remember(lm, SW.reference_views(c)[0], c.name, selection="uniform", budget=4) for c in CONCEPTS]
    bank = ego.MemoryBank(mems)
    named = CONCEPTS[2].name
    answer = ego.ask(lm, bank, QUERY.image, f"is {named} in this image ?", max_new_tokens=1, max_concepts=2)
    assert named in answer.concepts and len(answer.concepts) == 2
    enc = ego.encode_image(lm, REFS[0].image)
    sims = {m.name: ego.similarity(m, enc) for m in mems}
    assert all(-1.0 <= s <= 1.0 for s in sims.values())
    assert ego.choose_concepts(bank, [enc], "what is here ?", 1) == [max(sims, key=sims.get)]


def test_bank_for_another_model_is_refused(tmp_path) -> None:
    a, b = tiny("llava"), tiny("qwen2_vl")
    mem = ego.remember(a, REFS[0], "bix", selection="uniform", budget=4)
    path = ego.MemoryBank([mem]).save(tmp_path / "bix.bank")
    with pytest.raises(MemoryFileError, match="tiny-llava"):
        ego.MemoryBank.load(path, model=b)
    with pytest.raises(MemoryFileError):
        ego.ask(b, mem, QUERY.image, "is bix here ?")
    assert ego.MemoryBank.load(path, model=a).names == ["bix"]


def test_input_errors() -> None:
    lm = tiny("llava")
    with pytest.raises(InputError):
        ego.remember(lm, REFS[0], "two words")
    with pytest.raises(InputError):
        ego.remember(lm, REFS[0], "bix", selection="best")
    with pytest.raises(InputError):
        ego.remember(lm, REFS[0], "bix", budget=0)
    with pytest.raises(InputError):
        ego.remember(lm, REFS[0], "bix", keywords=[])
    with pytest.raises(InputError):
        ego.remember(lm, np.zeros((64, 64, 3), dtype=np.uint8), "bix", selection="oracle")
    with pytest.raises(InputError):
        ego.ask(lm, None, QUERY.image, " ")
    clip = tiny("clip")
    with pytest.raises(CapabilityError, match="Ego needs .*generates text"):
        ego.remember(clip, REFS[0], "bix")


def test_micro_format_prompts() -> None:
    lm = quick_micro_vlm()
    mem = ego.remember(lm, REFS[0], "bix", keywords=["red", "circle"], budget=0.2)
    answer = ego.ask(lm, mem, QUERY.image, ego.MICRO.question("bix"), max_new_tokens=1)
    assert answer.prompt == "USER: <image> this is bix .<image> is bix in this image ? ASSISTANT:"
    assert answer.context_tokens == 1 + 2 + 13 + 4 + 64 + 6 + 2


def test_llava_onevision_runs_and_paligemma_is_refused() -> None:
    lm = tiny("llava_onevision")
    mem = ego.remember(lm, REFS[0], "bix", budget=0.1)
    assert mem.n_tokens == sum(mem.budget) == round(0.1 * mem.views[0].n_tokens)
    answer = ego.ask(lm, mem, QUERY.image, "is bix in this image ?", max_new_tokens=1)
    assert answer.memory_tokens == mem.n_tokens
    with pytest.raises(CapabilityError, match="Ego needs .*soft visual tokens in context.*paligemma"):
        ego.remember(tiny("paligemma"), REFS[0], "bix")
    with pytest.raises(CapabilityError, match="soft visual tokens"):
        ego.ask(tiny("paligemma"), None, QUERY.image, "is bix in this image ?")


def test_results_save_load_and_show(tmp_path) -> None:
    """Answer, LayerCalibration, ReferenceLook, ConceptMemory and MemoryBank are results: JSON, a picture, a file."""
    from egokit.results import Result

    png = b"\x89PNG\r\n\x1a\n"
    lm = tiny("llava")
    mem = ego.remember(lm, REFS[0], "bix", budget=0.2)
    answer = ego.ask(lm, mem, QUERY.image, "is bix in this image ?", max_new_tokens=2)
    back = ego.Answer.load(answer.save(tmp_path / "answer.safetensors"))
    assert back.to_dict() == answer.to_dict() and back.yes == answer.yes

    cal = ego.calibrate_layers(lm, [REFS[0]], keep=1, cache=False)
    again = ego.LayerCalibration.load(cal.save(tmp_path / "cal.safetensors"))
    assert again.to_dict() == cal.to_dict() and again.precision == cal.precision

    look = ego.look_at(lm, REFS[0], keywords=["red", "circle"])
    seen = ego.ReferenceLook.load(look.save(tmp_path / "look.safetensors"))
    assert seen.to_dict() == look.to_dict() and torch.equal(seen.scores(), look.scores())
    assert np.array_equal(seen.image, look.image)

    bank = ego.MemoryBank([mem])
    assert ego.ConceptMemory.load(mem.save(tmp_path / "bix.bank"), model=lm).name == "bix"
    assert bank.to_dict()["concepts"][0]["name"] == "bix"
    for result in (answer, cal, look, mem, bank):
        assert isinstance(result, Result) and result._repr_png_().startswith(png)
    with pytest.raises(MemoryFileError, match="not one memory"):
        ego.ConceptMemory.load(ego.MemoryBank([mem, ego.remember(lm, REFS[1], "dax", selection="uniform")]).save(
            tmp_path / "two.bank"))
