"""`egokit sa2vp eval --quick` end to end through the CLI, and the result files."""

from __future__ import annotations

import json

import pytest
import torch

from egokit.cli import main
from egokit.errors import MemoryFileError
from egokit.methods.sa2vp.evaluation import ABLATIONS, METHODS
from egokit.methods.sa2vp.result import PromptChangeMaps, SA2VPEvalResult
from egokit.models.tiny import build_tiny


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread when the machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    for name in METHODS:
        m = doc["methods"][name]
        assert set(m["acc"]) == {"where", "count", "left_of", "color"}
        assert all(0.0 <= v <= 1.0 for v in m["acc"].values())
        assert 0.0 <= m["acc_spatial_mean"] <= 1.0 and m["trainable_params"] > 0 and m["seconds"] >= 0
    assert set(doc["ablations"]) == set(ABLATIONS)
    assert doc["methods"]["linear"]["trainable_params"] == 32 * 9 + 9            # the 9-way head of `where`
    assert doc["targets"]["param_ratio_to_vpt_deep"] <= 1.5
    assert doc["settings"]["seed"] == 3 and doc["settings"]["test_seed"] == 1003

    result = SA2VPEvalResult.load(out)
    assert result.to_dict() == doc
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


def test_tour_section_is_registered_and_its_short_run_works(one_thread):
    from dataclasses import replace

    import egokit.commands.sa2vp_tour as tour_module
    from egokit.commands import discover
    from egokit.methods.sa2vp.evaluation import EvalSettings
    from egokit.models.loading import from_model
    from egokit.tour.report import SECTIONS

    assert not discover()
    assert "sa2vp" in [s.key for s in SECTIONS]
    model, processor = build_tiny("clip")
    settings = replace(EvalSettings.quick(), tasks=(tour_module.TOUR_TASK,), ablations=False)
    run = tour_module.run_short(from_model(model, processor, "tiny-clip"), seed=0, settings=settings)
    assert set(run["acc"]) == set(tour_module.TOUR_METHODS)
    assert run["maps"].task == "left_of" and run["maps"].to_image().width > 0
    assert tour_module.tour_settings(1).tasks == ("left_of",)
