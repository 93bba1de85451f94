"""The evaluation's metrics, `MisalignEvaluation` (flat metrics, save/load, picture), `quick_evaluate` on the micro
CLIP, and the `egokit misalign score|eval` commands (through `egokit.cli.main`)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import egokit
from egokit import cli
from egokit.data.captions import FOIL_KINDS
from egokit.data.shapesworld import ShapesWorld
from egokit.methods.misalign import (
    DEFAULT_MODEL,
    MisalignEvaluation,
    MisalignmentResult,
    average_precision,
    foil_set,
    localisation,
    multi_foil_set,
    quick_evaluate,
    word_prf,
)
from egokit.methods.misalign.evaluation import QUICK, flat_metrics
from egokit.models.tiny import build_tiny
from egokit.results import Evaluation


def _r(scores, words=None, eps=-0.05):
    words = words or [f"w{i}" for i in range(len(scores))]
    return MisalignmentResult(caption=" ".join(words), words=words, scores=torch.tensor(scores), similarity=0.3,
                              eps=eps)


def test_average_precision_by_hand_and_with_ties():
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([1, 1, 0, 0], [4, 3, 2, 1]) == 1.0
    assert average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # one tied threshold


def test_localisation_gives_partial_credit_for_ties():
    rs = [_r([0.1, -0.2, 0.3]), _r([-0.2, -0.2, 0.3]), _r([0.1, 0.2, -0.3])]
    assert localisation(rs, [1, 1, 0]) == [1.0, 0.5, 0.0]


def test_localisation_with_punctuation_follows_the_official_rule():
    """The kit never lets the final "." be the most negative word; the official rule does."""
    r = SimpleNamespace(words=["a", "red", "circle", "."], scores=torch.tensor([0.1, -0.2, 0.3, -0.5]))
    assert localisation([r], [1]) == [1.0]
    assert localisation([r], [1], punctuation=True) == [0.0]
    assert localisation([r], [3], punctuation=True) == [1.0]


def test_word_prf():
    rs = [_r([-0.1, 0.2, -0.3]), _r([0.1, 0.2, 0.3])]
    m = word_prf(rs, [[0], [1]], eps=-0.05)
    assert m == {"precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_foil_sets_cover_every_kind_and_are_valid():
    data = foil_set(0, 10)
    assert {f.kind for _, f in data} == set(FOIL_KINDS)
    for scene, foil in data:
        assert foil.caption.split()[foil.index] == foil.replacement
        assert scene.caption.split()[foil.index] == foil.original
    multi = multi_foil_set(0, 6)
    assert all(1 <= len(f.indices) <= 3 for _, f in multi)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tinyclip")
    model, processor = build_tiny("clip")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    scene = ShapesWorld(seed=0, split="test").scene(0)
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(scene.image).save(path)
    return path, scene.caption


def test_cli_score_json_and_picture(model_dir, scene_png, tmp_path, capsys):
    path, caption = scene_png
    out = tmp_path / "heat.png"
    code = cli.main(["misalign", "score", str(path), caption, "--json", "--out", str(out), "--model", str(model_dir),
                     "--device", "cpu"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["words"] == caption.split() and len(doc["scores"]) == len(doc["words"])
    assert set(doc) >= {"flagged", "phrases", "clipscore", "fclipscore", "most_negative_word"}
    assert Image.open(out).size[0] >= 256


def test_cli_score_text_output(model_dir, scene_png, capsys):
    path, caption = scene_png
    assert cli.main(["misalign", "score", str(path), caption, "--model", str(model_dir), "--device", "cpu",
                     "--eps", "0.0"]) == 0
    text = capsys.readouterr().out
    assert "F-CLIPScore" in text and "(most negative)" in text


@pytest.mark.parametrize("args, message", [
    (["IMG", "  "], "caption is empty"),
    (["/no/such.png", "a red circle"], "not found"),
    (["IMG", " ".join(["red circle"] * 30)], "do not fit"),
])
def test_cli_score_errors_are_one_line(model_dir, scene_png, capsys, args, message):
    args = [str(scene_png[0]) if a == "IMG" else a for a in args]
    code = cli.main(["misalign", "score", *args, "--model", str(model_dir), "--device", "cpu"])
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("egokit:")]
    assert code == 2 and "Traceback" not in err and len(ours) == 1 and message in ours[0]


def test_cli_eval_json_keys(model_dir, capsys):
    code = cli.main(["misalign", "eval", "--json", "--n", "5", "--seed", "3", "--model", str(model_dir),
                     "--device", "cpu"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("la", "la_clamped", "la_positive_only", "la_captum", "la_chefer", "la_paper_layers",
                "ap_fclipscore", "ap_clipscore", "pair_accuracy", "captions_per_s_batched", "captions_per_s_single"):
        assert isinstance(doc[key], float), key
    assert all(v is None or isinstance(v, (int, float, str, bool)) for v in doc.values())  # one flat dict
    assert {k for k in doc if k.startswith("la_by_type.")} == {f"la_by_type.{k}" for k in FOIL_KINDS}
    assert {k for k in doc if k.startswith("multi_error.")} == {f"multi_error.{k}" for k in ("precision", "recall",
                                                                                             "f1")}
    assert doc["n"] == 5 and doc["seed"] == 3 and doc["eps"] < 1e-30
    assert doc["layers"] in ("1", "0,1")  # calibrated on the validation split (the tiny CLIP has 2 layers)
    assert {k for k in doc if k.startswith("validation.val_la_by_layers.")} == {
        "validation.val_la_by_layers.1", "validation.val_la_by_layers.2"}
    assert 0.0 <= doc["la"] <= 1.0 and 0.0 <= doc["ap_fclipscore"] <= 1.0


def test_flat_metrics_names_nested_values_with_dots():
    nested = {"la": 0.5, "layers": [2, 3], "by": {"a": 1, "b": {2: None}}, "n": np.int64(4)}
    flat = flat_metrics(nested)
    assert flat == {"la": 0.5, "layers": "2,3", "by.a": 1, "by.b.2": None, "n": 4}
    assert type(flat["n"]) is int


@pytest.fixture(scope="module")
def quick():
    return quick_evaluate(egokit.load(DEFAULT_MODEL, device="cpu"))


def test_quick_evaluate_on_the_micro_clip(quick):
    assert isinstance(quick, MisalignEvaluation) and isinstance(quick, Evaluation)
    m = quick.metrics()
    assert m["model"] == DEFAULT_MODEL == "micro-clip" and m["n"] == QUICK["n"] and m["la_captum"] is None
    assert all(v is None or isinstance(v, (int, float, str, bool)) for v in m.values())
    assert quick["la"] == m["la"] and quick.section("la_by_type").keys() == set(FOIL_KINDS)
    assert quick.layers == [int(x) for x in m["layers"].split(",")]
    assert quick.settings["n"] == QUICK["n"] and quick.settings["captum"] is False


def test_the_paper_settings_are_reported_beside_the_calibrated_ones(quick):
    """The paper's rule: its template where the tokenizer reads it, the last 3 text layers, ε = −5e-5."""
    from egokit.methods.misalign import PAPER_EPS
    from egokit.methods.misalign.inputs import default_template

    m = quick.metrics()
    loaded = egokit.load(DEFAULT_MODEL, device="cpu")
    depth = loaded.model.config.text_config.num_hidden_layers
    assert m["paper_settings.layers"] == ",".join(str(i) for i in range(depth - 3, depth))
    assert m["paper_settings.eps"] == PAPER_EPS == -5e-5
    assert m["paper_settings.template"] == default_template(loaded.processor.tokenizer)
    # the localisation with the paper's layers is the one the evaluation already measures that way
    assert m["paper_settings.la"] == pytest.approx(m["la_paper_layers"])
    for key in ("ap_fclipscore_eps", "multi_error.precision", "multi_error.recall", "multi_error.f1"):
        assert 0.0 <= m[f"paper_settings.{key}"] <= 1.0


def test_evaluation_round_trips_and_draws(quick, tmp_path):
    back = MisalignEvaluation.load(quick.save(tmp_path / "ev.safetensors"))
    assert back.metrics() == quick.metrics() and back.settings == quick.settings
    png = quick._repr_png_()
    assert png.startswith(b"\x89PNG")
    picture = quick.to_image().convert("L")
    assert picture.getextrema()[0] < 128  # not blank: dark text on white
