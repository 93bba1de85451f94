"""The capture benchmark: fair timing (rotating rounds, same sdpa path) and the real-geometry JSON."""

from __future__ import annotations

import json

import torch

from egokit.capture import bench
from egokit.cli import main
from egokit.commands import bench as bench_command


def test_rounds_rotate_so_no_variant_always_runs_first() -> None:
    ran: list[str] = []
    times = bench.time_rounds(ran.append, ["a", "b", "c"], repeats=3, warmup=1)
    assert ran == list("abc" "abc" "bca" "cab")  # one warm-up round, then each variant leads one round
    assert {v: len(t) for v, t in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    times = {"t": [2.0, 3.0, 10.0], "p": [1.0, 2.0, 5.0]}
    ratio, iqr = bench.paired_ratio(times, "t", "p")
    assert ratio == 2.0 and iqr[0] <= 2.0 <= iqr[1]


def test_plain_wrapper_and_targeted_make_the_same_sdpa_call() -> None:
    model = bench._build(1, 0)
    embeds, visual, queries = bench._inputs(20, 12, 0)
    seen = {}
    for variant in ("plain", "egokit_wrapper", "targeted"):
        with bench.sdpa_calls() as calls:
            bench._run(model, variant, embeds, visual, queries)
        seen[variant] = calls
    assert len(seen["plain"]) == 1
    assert seen["plain"][0]["mask"] is None and seen["plain"][0]["is_causal"] is True
    assert seen["plain"] == seen["egokit_wrapper"] == seen["targeted"]


def test_sdpa_calls_tells_an_explicit_mask_from_is_causal() -> None:
    model = bench._build(1, 0)
    embeds, _, _ = bench._inputs(20, 12, 0)
    padding = torch.ones(1, embeds.shape[1], dtype=torch.long)
    padding[0, 0] = 0
    with torch.no_grad(), bench.sdpa_calls() as causal:
        model(inputs_embeds=embeds, logits_to_keep=1, use_cache=False)
    with torch.no_grad(), bench.sdpa_calls() as masked:
        model(inputs_embeds=embeds, attention_mask=padding, logits_to_keep=1, use_cache=False)
    assert masked[0]["mask"] is not None and masked[0]["is_causal"] is False
    assert causal != masked


def test_synthetic_benchmark_reports_plain_paths_and_matches_eager() -> None:
    r = bench.run_capture_benchmark(layers=1, repeats=2, visual_tokens=20, text_tokens=12, memory=False, warmup=1)
    assert r["geometry"] == "synthetic" and r["same_sdpa_path"] is True
    assert set(r["plain_paths"]) == {"sdpa", "egokit_wrapper"}
    assert r["plain_s"] == min(r["plain_paths"].values())
    assert r["targeted_over_plain"] > 0 and len(r["targeted_over_plain_iqr"]) == 2
    assert r["max_abs_diff"] < 1e-5
    assert r["order"] == "rotating rounds" and r["warmup"] == 1


def test_scaled_cases_repeat_the_image_span() -> None:
    layout = {"part": "language", "seq_len": 30, "visual": [3, 4, 6, 7], "span": [3, 8]}
    case = bench._scaled(layout, 3)
    assert case["seq_len"] == 30 + 2 * 5
    assert case["visual"] == [3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 16, 17]
    assert case["queries"] == list(range(30, 40)) and case["batch"] == 1
    vision = bench._scaled({"part": "vision", "seq_len": 50, "visual": list(range(1, 50)), "span": [1, 50]}, 4)
    assert vision["batch"] == 4 and vision["seq_len"] == 50 and vision["queries"] == list(range(10))


def test_cases_over_the_compute_cap_are_skipped_with_the_reason() -> None:
    r = bench.run_real_benchmark(["llava"], scales=(1, 2), memory=False, max_gflop=1.0)
    cases = r["families"]["llava"]["cases"]
    assert [c["seq_len"] for c in cases] == [585, 1161]  # LLaVA-1.5: 576 visual tokens for any photo
    assert all("--max-gflop" in c["skipped"] for c in cases)
    assert r["summary"]["met"] is False and "llava" in r["summary"]["misses"][0]


def test_command_defaults_mirror_the_benchmark() -> None:
    assert bench_command.REAL_NAMES == tuple(bench.real_names())
    assert bench_command.REAL_DEFAULTS == bench.REAL_DEFAULTS
    assert bench_command.REAL_QUICK == bench.REAL_QUICK


def test_real_quick_json(capsys) -> None:
    assert main(["bench", "capture", "--geometry", "real", "--quick", "--family", "clip", "--family", "smolvlm",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["geometry"] == "real" and r["device"] == "cpu" and "not measured" in r["gpu"]
    assert r["layers"] == 1 and r["scales"] == [1] and r["repeats"] == 1
    assert set(r["families"]) == {"clip", "smolvlm"}
    for name, seq in (("clip", 50), ("smolvlm", 1133)):
        entry = r["families"][name]
        assert entry["seq_len_one_image"] == seq and entry["layers"] == 1 and entry["layers_real_model"] > 1
        (case,) = entry["cases"]
        assert case["scale"] == 1 and case["same_sdpa_path"] is True
        for key in ("plain_s", "targeted_s", "targeted_over_plain", "plain_peak_mb", "targeted_peak_mb",
                    "eager_peak_mb", "attention_bytes", "max_abs_diff"):
            assert key in case, (name, key)
        assert case["max_abs_diff"] < 1e-5
    smol = r["families"]["smolvlm"]["cases"][0]
    assert smol["targeted_extra_over_eager_extra"] is not None  # eager's 46 MB of maps are well above RSS noise
    assert set(r["summary"]) >= {"targets", "met", "misses", "notes"}
