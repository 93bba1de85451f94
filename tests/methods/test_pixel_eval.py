"""`egokit pixel eval`: phrase matching, boxes, baselines, and a run on a tiny model (all keys, sane ranges)."""

from __future__ import annotations

import json

import pytest
import torch

import egokit.methods.pixel.evaluation as pixel_eval
from egokit import cli
from egokit.data.shapesworld import ShapesWorld
from egokit.methods.pixel.evaluation import center_box, inside, iou, match_phrases, noun_phrases, object_words
from egokit.methods.pixel.head import PointHead
from egokit.methods.pixel.targets import canonical_objects
from egokit.methods.pixel.training import load_base
from egokit.results import Evaluation, flat_metrics

KEYS = ("word_in_box", "word_in_box_center_baseline", "refer_p50", "refer_p50_center_baseline",
        "caption_attr_acc_with_head", "caption_attr_acc_without_head")


def test_noun_phrases_and_matching():
    words = "a large red striped circle left of a small blue solid square .".split()
    ph = noun_phrases(words)
    assert len(ph) == 2 and ph[0]["attrs"]["shape"] == (4, "circle") and ph[1]["colors"] == [(9, "blue")]
    scene = next(s for s in ShapesWorld(seed=0, split="test", min_objects=2, max_objects=2).scenes(50))
    objs = canonical_objects(scene)
    caption = " ".join(f"a {o.size} {o.color} {o.pattern} {o.shape}" for o in objs) + " ."
    pairs = match_phrases(noun_phrases(caption.split()), scene.objects)
    assert sorted(scene.objects[o] is objs[p] for p, o in pairs) == [True, True]
    ow = object_words(caption.split(), scene.objects)
    assert len(ow) == 8 and all(scene.objects[o] is objs[k // 5] for k, o in ow)


def test_boxes_and_baselines():
    assert inside((1, 1), (0, 0, 2, 2)) and not inside((2, 1), (0, 0, 2, 2))
    assert iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0 and iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert center_box(64, (10, 20)) == (27, 22, 37, 42)
    g = pixel_eval._grounding([(True, True), (True, False), (False, False)])
    assert g == {"refer_base_position_acc": pytest.approx(2 / 3), "refer_p50_base_right": 0.5,
                 "refer_p50_base_wrong": 0.0}
    w, h = pixel_eval.mean_object_size(n=40)
    assert 10 < w < 30 and 10 < h < 30


def test_evaluate_on_a_tiny_model_returns_every_metric(tmp_path):
    base = load_base("tiny:llava", torch.device("cpu"))
    head = PointHead(32, hidden=16, meta={"base_fingerprint": base.fingerprint(), "mode": "box"})
    ev = pixel_eval.evaluate(base, head, seed=1, n=2, n_refer=3, progress=False)
    assert isinstance(ev, pixel_eval.PixelEvaluation) and isinstance(ev, Evaluation)
    m = ev.metrics()
    assert all(isinstance(v, (int, float, str, bool)) or v is None for v in m.values())  # flat
    assert m["position_probe_baseline_cells"] > 0 and m["position_probe_error_cells"] > 0
    for k in KEYS:
        assert 0.0 <= m[k] <= 1.0
    assert m["n_scenes"] == 2 and m["n_refer"] == 3 and m["seed"] == 1
    for k in ("refer_base_position_acc", "refer_p50_base_right", "refer_p50_base_wrong", "refer_p50_answer_position",
              "refer_miou_answer_position", "refer_p50_token_union"):
        assert 0.0 <= m[k] <= 1.0
    by = {k.split(".", 1)[1]: v for k, v in m.items() if k.startswith("refer_p50_by_objects.")}
    assert set(by) <= {"1", "2", "3"} and len(by) >= 1 and all(0.0 <= v <= 1.0 for v in by.values())
    assert json.dumps(m)
    back = type(ev).load(ev.save(tmp_path / "eval.safetensors"))
    assert back.metrics() == m and ev._repr_png_().startswith(b"\x89PNG")
    assert flat_metrics({"a": 1, "b": {"1": 0.5, "2": {"x": 2}}}) == {"a": 1, "b.1": 0.5, "b.2.x": 2}


def test_cli_pixel_commands(tmp_path, capsys, monkeypatch):
    import egokit.commands.pixel as pixel_cli

    base = load_base("tiny:llava", torch.device("cpu"))
    head = PointHead(32, hidden=16, meta={"base_fingerprint": base.fingerprint()})
    monkeypatch.setattr(pixel_cli, "_load", lambda args: (base, head))
    scene = ShapesWorld(seed=0, split="test").scene(1)
    image = tmp_path / "scene.png"
    image.write_bytes(scene.png_bytes())
    assert cli.main(["pixel", "refer", str(image), "the red circle", "--json", "--out", str(tmp_path / "r.png")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "refer" and len(doc["box"]) == 4 and (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["pixel", "refer", str(image), "the red circle", "--json", "--readout", "answer_position"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["box"] != doc["box"]  # another position's two corners
    assert cli.main(["pixel", "localize", str(image), "--out", str(tmp_path / "l.png")]) == 0
    assert "point (" in capsys.readouterr().out
    assert cli.main(["pixel", "eval", "--json", "--n", "1", "--n-refer", "1", "--seed", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all(k in doc for k in KEYS) and doc["seed"] == 2
    assert not any(isinstance(v, dict) for v in doc.values())  # what metrics() gives: flat


def test_cli_missing_head_is_one_line_error(tmp_path, capsys):
    assert cli.main(["pixel", "eval", "--head", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("egokit: error:") and "train" in err
