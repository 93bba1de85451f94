"""The LoRSU protocol end to end on a tiny random CLIP: the result's metrics, save/load round trip, picture,
and `egokit lorsu eval --quick --json` through `egokit.cli.main`."""

from __future__ import annotations

import json

import pytest
import torch

from egokit.errors import MemoryFileError
from egokit.methods.lorsu.data import default_sessions
from egokit.methods.lorsu.evaluation import Settings, evaluate
from egokit.methods.lorsu.result import LorsuEvaluation
from egokit.models.tiny import build_tiny


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models train fastest on one thread (and a busy machine makes two far slower)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def result():
    model, processor = build_tiny("clip", seed=2, vision_config={"num_attention_heads": 4})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = Settings(shots=2, seed=3, epochs=2, target_per_class=3, control_images=12)
    res = evaluate((model, processor), methods=("lorsu", "spu", "random_heads"), settings=settings,
                   sessions=default_sessions()[:2], progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    return res


def test_metrics_have_the_documented_keys(result):
    m = result.metrics()
    assert set(m["methods"]) == {"lorsu", "spu"} and set(m["ablations"]) == {"random_heads"}
    for v in [*m["methods"].values(), *m["ablations"].values()]:
        assert {"ti", "cc", "trainable_params", "optimizer_bytes", "seconds"} <= set(v)
        assert -1.0 <= v["ti"] <= 1.0 and -1.0 <= v["cc"] <= 1.0
    lorsu = result.method_metrics("lorsu")
    assert lorsu["ti"] == pytest.approx(lorsu["target"] - m["before"]["target"])
    assert m["sessions"] == ["pink", "hexagon"]


def test_save_load_round_trip_and_picture(result, tmp_path):
    path = result.save(tmp_path / "lorsu.safetensors")
    back = LorsuEvaluation.load(path)
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(result.to_dict(), sort_keys=True)
    assert torch.equal(back.reports["lorsu"][1].fc1_masks, result.reports["lorsu"][1].fc1_masks)
    assert result._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(MemoryFileError):
        LorsuEvaluation.load(bad)


def test_cli_quick_eval_prints_json(tmp_path, capsys):
    from egokit.cli import main

    model, processor = build_tiny("clip", seed=4, vision_config={"num_hidden_layers": 1},
                                  text_config={"num_hidden_layers": 1})
    folder = tmp_path / "tiny-clip"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    code = main(["lorsu", "eval", "--json", "--quick", "--shots", "1", "--seed", "2", "--model", str(folder),
                 "--device", "cpu"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["methods"]) == {"lorsu", "full", "lora", "spu", "layernorm"}
    assert set(out["ablations"]) == {"random_heads", "unmasked_fc1"}
    for v in out["methods"].values():
        assert {"ti", "cc", "trainable_params", "optimizer_bytes", "seconds"} <= set(v)
    assert out["methods"]["lorsu"]["trainable_params"] < out["methods"]["full"]["trainable_params"]
    assert out["settings"]["quick"] is True and out["settings"]["shots"] == 1
