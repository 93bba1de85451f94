"""`egokit sa2vp eval --quick` end to end through the CLI, the result files, `quick_evaluate`, the short
comparison of the tour, and the shipped evaluation file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from egokit.cli import main
from egokit.errors import CapabilityError, MemoryFileError
from egokit.methods.sa2vp import (
    ABLATIONS,
    DEFAULT_METHODS,
    METHODS,
    SHORT_METHODS,
    SHORT_TASK,
    EvalSettings,
    PromptChangeMaps,
    SA2VPEvalResult,
    evaluate,
    quick_evaluate,
    short_comparison,
    short_settings,
)
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-clip")
    model, processor = build_tiny("clip")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def quick_run(one_thread, tiny_clip_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("sa2vp") / "result.safetensors"
    return out, ["sa2vp", "eval", "--quick", "--json", "--model", str(tiny_clip_folder), "--seed", "3",
                 "--device", "cpu", "--threads", "1", "--out", str(out)]


def test_quick_eval_runs_end_to_end_via_the_cli(quick_run, capsys):
    out, argv = quick_run
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    tasks = ("where", "count", "left_of", "color")
    for name in METHODS:
        assert all(0.0 <= doc[f"{name}.acc.{t}"] <= 1.0 for t in tasks)
        assert 0.0 <= doc[f"{name}.acc_spatial_mean"] <= 1.0
        assert doc[f"{name}.trainable_params"] > 0 and doc[f"{name}.seconds"] >= 0
    assert {k.split(".")[1] for k in doc if k.startswith("ablation.")} == set(ABLATIONS)
    assert doc["linear.trainable_params"] == 32 * 9 + 9            # the 9-way head of `where`
    assert doc["param_ratio_to_vpt_deep"] <= 1.5
    assert doc["settings.seed"] == 3 and doc["settings.test_seed"] == 1003
    assert doc["spatial_tasks"] == "where,count,left_of" and doc["control_task"] == "color"
    assert all(isinstance(v, (int, float, str, bool)) or v is None for v in doc.values()), "metrics are flat"

    result = SA2VPEvalResult.load(out)
    assert result.metrics() == doc
    assert result.to_dict()["settings"]["seed"] == 3 and result.to_dict()["methods"].keys() == set(METHODS)
    assert result.maps is not None and result.maps.change.shape[-2:] == (8, 8)
    assert result._repr_png_().startswith(b"\x89PNG")


def test_result_files_are_checked(tmp_path, quick_run):
    out, _ = quick_run
    if not out.exists():
        pytest.skip("needs the quick run")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(out.read_bytes()[:100])
    with pytest.raises(MemoryFileError):
        SA2VPEvalResult.load(bad)
    with pytest.raises(MemoryFileError, match="not a sa2vp maps file"):
        PromptChangeMaps.load(out)
    maps = SA2VPEvalResult.load(out).maps
    maps.save(tmp_path / "maps.safetensors")
    again = PromptChangeMaps.load(tmp_path / "maps.safetensors")
    assert torch.equal(again.change, maps.change) and again.labels == maps.labels
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_the_default_run_trains_the_default_methods_and_the_long_run_adds_vpt_shallow(one_thread):
    model = from_model(*build_tiny("clip"), "tiny-clip")
    short = replace(EvalSettings.quick(), tasks=(SHORT_TASK,), n_train=8, n_test=8, ablations=False)
    assert tuple(evaluate(model, short, progress=False).methods) == DEFAULT_METHODS == ("sa2vp", "vpt_deep", "linear")
    assert set(evaluate(model, replace(short, ablations=True), progress=False).methods) == set(METHODS)


def test_quick_evaluate_is_one_task_without_ablations(one_thread, tmp_path):
    model, processor = build_tiny("clip")
    result = quick_evaluate(from_model(model, processor, "tiny-clip"))
    assert isinstance(result, SA2VPEvalResult)
    assert result.spatial_tasks == [SHORT_TASK] and not result.ablations
    assert set(result.methods) == set(METHODS)
    result.save(tmp_path / "quick.safetensors")
    assert SA2VPEvalResult.load(tmp_path / "quick.safetensors").metrics() == result.metrics()


def test_evaluate_asks_the_family_for_a_wrappable_vit():
    model, processor = build_tiny("qwen2_vl")
    with pytest.raises(CapabilityError, match="wrappable ViT"):
        quick_evaluate(from_model(model, processor, "tiny-qwen2-vl"))


def test_the_shipped_evaluation_file_still_loads():
    result = SA2VPEvalResult.load(ROOT / "notebooks" / "data" / "sa2vp_eval_micro-clip.safetensors")
    assert result.model_name == "micro-clip" and result.settings["n_train"] == 1000
    metrics = result.metrics()
    assert metrics["sa2vp.acc_spatial_mean"] == pytest.approx(0.8750, abs=1e-4)
    assert metrics["vpt_deep.acc_spatial_mean"] == pytest.approx(0.8242, abs=1e-4)
    assert metrics["ablation.official_blocks.acc_spatial_mean"] == pytest.approx(0.8583, abs=1e-4)
    assert result.settings["distill_layers"] == [0, 2]
    assert result.maps is not None and result.maps.change.shape == (8, 4, 8, 8)


def test_tour_section_is_registered_and_the_short_comparison_works(one_thread):
    import egokit.commands.sa2vp as sa2vp_commands
    from egokit.commands import discover
    from egokit.tour.report import SECTIONS

    assert not discover()
    assert "sa2vp" in [s.key for s in SECTIONS]
    assert sa2vp_commands.MODEL == "micro-clip"
    model, processor = build_tiny("clip")
    settings = replace(EvalSettings.quick(), tasks=(SHORT_TASK,), ablations=False)
    run = short_comparison(from_model(model, processor, "tiny-clip"), seed=0, settings=settings)
    assert set(run.methods) == set(SHORT_METHODS)
    assert run.maps.task == "left_of" and run.maps.to_image().width > 0
    assert short_settings(1).tasks == ("left_of",) and short_settings(1).seed == 1
