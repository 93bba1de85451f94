"""`egokit ego eval` on a micro-VLM-shaped model (untrained: checks the plumbing and the JSON, not quality),
and the `egokit ego` command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_ego_support import quick_micro_vlm, save_quick_micro_vlm, single_thread

from egokit.methods.ego import EgoEvaluation, check_targets, evaluate, held_out_concepts, quick_evaluate
from egokit.methods.ego.evaluation import f1_score

KEYS = {
    "selection_precision": {"ego", "uniform", "random"},
    "f1": {"ego", "uniform", "random", "keywords", "all_tokens", "oracle"},
    "multi_concept_f1": {"ego", "all_tokens"},
    "video_f1": {"ego", "all_tokens"},
    "memory_tokens": {"ego", "all_tokens"},
    "memory_bytes": {"ego", "all_tokens"},
    "answer_s": {"ego", "all_tokens"},
}

@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def test_f1() -> None:
    assert f1_score([True, True, False, False], [True, False, True, False]) == 0.5
    assert f1_score([True, False], [False, False]) == 0.0
    assert f1_score([True, False], [True, False]) == 1.0


def test_held_out_concepts_are_test_identities() -> None:
    from egokit.data.concept_pool import split_concepts
    from egokit.data.shapesworld import ShapesWorld

    world = ShapesWorld(seed=0, split="test")
    concepts = held_out_concepts(world, seed=3, n=6)
    train = {c.identity for c in split_concepts(world, "train")}
    assert len({c.name for c in concepts}) == 6
    assert not any(c.identity in train for c in concepts)
    assert [c.identity for c in concepts] == [c.identity for c in held_out_concepts(world, seed=3, n=6)]
    assert [c.identity for c in concepts] != [c.identity for c in held_out_concepts(world, seed=4, n=6)]


@pytest.fixture(scope="module")
def evaluation() -> EgoEvaluation:
    return evaluate(quick_micro_vlm(), seed=1, n_concepts=2, queries={"positive": 1, "hard_negative": 1},
                    video_frames=2, timing_queries=2, calibrate=False, progress=False)


@pytest.fixture(scope="module")
def result(evaluation: EgoEvaluation) -> dict:
    return evaluation.to_dict()


def test_eval_json(result: dict) -> None:
    for key, inner in KEYS.items():
        assert inner <= set(result[key]), key
    for value in result["f1"].values():
        assert 0.0 <= value <= 1.0
    assert result["memory_tokens"]["ego"] == 13 and result["memory_tokens"]["all_tokens"] == 64
    assert result["memory_bytes"]["ego"] < result["memory_bytes"]["all_tokens"]
    assert 0.0 <= result["personalized_caption_name_rate"] <= 1.0
    assert result["add_concept_s"] > 0 and result["counts"]["recognition_queries"] == 4
    assert result["settings"]["format"] == "micro" and result["settings"]["concepts"] == 2
    json.dumps(result, allow_nan=False)
    assert set(check_targets(result)) >= {"f1_ego_ge_keywords", "add_concept_under_1s"}


def test_evaluation_is_a_result(evaluation: EgoEvaluation, tmp_path: Path) -> None:
    metrics = evaluation.metrics()
    assert metrics["f1.ego"] == evaluation.to_dict()["f1"]["ego"]
    assert metrics["settings.queries_per_concept.positive"] == 1 and metrics["settings.format"] == "micro"
    assert all(isinstance(v, (int, float, str, bool)) or v is None for v in metrics.values())
    back = EgoEvaluation.load(evaluation.save(tmp_path / "ego.safetensors"))
    assert back.metrics() == metrics and back.to_dict() == evaluation.to_dict()
    png = evaluation._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
    assert check_targets(evaluation) == check_targets(evaluation.to_dict())


def test_quick_evaluate() -> None:
    quick = quick_evaluate(quick_micro_vlm())
    assert isinstance(quick, EgoEvaluation)
    assert quick.metrics()["settings.concepts"] == 2 and quick.metrics()["counts.recognition_queries"] == 4


def test_cli_remember_ask_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from egokit.cli import main
    from egokit.data.shapesworld import ShapesWorld

    folder = save_quick_micro_vlm(tmp_path / "model")
    sw = ShapesWorld(seed=0, split="test")
    concept = sw.concepts(1)[0]
    ref, query = tmp_path / "ref.png", tmp_path / "query.png"
    Image.fromarray(sw.reference_views(concept)[0].image).save(ref)
    Image.fromarray(sw.concept_query(concept, "positive").image).save(query)
    bank = tmp_path / "my.bank"

    assert main(["ego", "remember", str(ref), "bix", "--bank", str(bank), "--model", str(folder), "--json",
                 "--budget", "8", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["concepts"] == ["bix"] and out["memory"]["tokens"] == 8 and bank.exists()
    assert main(["ego", "ask", str(query), "is bix in this image ?", "--bank", str(bank), "--model", str(folder),
                 "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["concepts"] == ["bix"] and 0.0 <= out["p_yes"] <= 1.0

    bank.write_bytes(bank.read_bytes()[:50])
    assert main(["ego", "ask", str(query), "is bix here ?", "--bank", str(bank), "--model", str(folder)]) == 2
    assert "memory bank" in capsys.readouterr().err


def test_cli_eval_json_prints_the_flat_metrics(evaluation: EgoEvaluation, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import egokit.commands.ego as commands
    from egokit.cli import main

    monkeypatch.setattr(commands, "run_eval", lambda args: evaluation)
    assert main(["ego", "eval", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(evaluation.metrics()))
    assert main(["ego", "eval"]) == 0
    assert "selection_precision" in capsys.readouterr().out


def test_cli_eval_parser() -> None:
    from egokit.cli import build_parser

    args = build_parser().parse_args(["ego", "eval", "--json", "--seed", "3", "--concepts", "5", "--budget", "0.25"])
    assert (args.seed, args.concepts, args.budget, args.json) == (3, 5, 0.25, True)
    assert np.isclose(build_parser().parse_args(["ego", "eval", "--budget", "13"]).budget, 13)
