"""The LoRSU protocol end to end on a tiny random CLIP: the result's flat metrics (what `--json` prints),
save/load round trip, pictures, the command's table, and `egokit lorsu eval --quick --json` through
`egokit.cli.main`."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import egokit.methods.lorsu as lorsu
from egokit.errors import MemoryFileError
from egokit.methods.lorsu import LorsuEvaluation, Settings, default_sessions, evaluate
from egokit.models.tiny import build_tiny
from egokit.results import Evaluation

NUMBERS = ("ti", "cc", "target", "control", "trainable_params", "optimizer_bytes", "seconds")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def result():
    model, processor = build_tiny("clip", seed=2, vision_config={"num_attention_heads": 4})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = Settings(shots=2, seed=3, epochs=2, target_per_class=3, control_images=12)
    res = evaluate((model, processor), methods=("lorsu", "spu", "random_heads"), settings=settings,
                   sessions=default_sessions()[:2], progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    return res


def _non_blank(png: bytes) -> bool:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return int(pixels.max()) - int(pixels.min()) > 50


def test_the_package_exports_the_method_contract():
    assert lorsu.DEFAULT_MODEL == "micro-clip"
    assert callable(lorsu.evaluate) and callable(lorsu.quick_evaluate) and callable(lorsu.update)
    assert issubclass(LorsuEvaluation, Evaluation)
    assert LorsuEvaluation.FILE_KIND == "egokit.lorsu_evaluation" and LorsuEvaluation.FILE_VERSION == 1
    assert all(hasattr(lorsu, name) for name in lorsu.__all__)


def test_metrics_are_flat_with_the_documented_keys(result):
    m = result.metrics()
    assert all(isinstance(v, (int, float, str, bool)) or v is None for v in m.values()), m
    assert {k.split(".")[1] for k in m if k.startswith("methods.")} == {"lorsu", "spu"}
    assert {k.split(".")[1] for k in m if k.startswith("ablations.")} == {"random_heads"}
    for group, name in (("methods", "lorsu"), ("methods", "spu"), ("ablations", "random_heads")):
        v = result.method_metrics(name)
        assert {k for k in NUMBERS} == {k.split(".", 2)[2] for k in m if k.startswith(f"{group}.{name}.")}
        assert all(m[f"{group}.{name}.{k}"] == v[k] for k in NUMBERS)
        assert -1.0 <= v["ti"] <= 1.0 and -1.0 <= v["cc"] <= 1.0
    lorsu_numbers = result.method_metrics("lorsu")
    assert lorsu_numbers["ti"] == pytest.approx(lorsu_numbers["target"] - m["before.target"])
    assert m["before.target"] == result.before_metrics()["target"]
    assert {k for k in m if k.startswith("before.per_session.")} == {"before.per_session.pink",
                                                                     "before.per_session.hexagon"}
    assert m["sessions"] == 2 and result.sessions == ["pink", "hexagon"]
    assert m["settings.shots"] == 2 and m["settings.lr.lorsu"] == lorsu.DEFAULTS["lr"]
    assert m["model"] == "CLIPModel"
    nested = result.summary()  # the same numbers, nested
    assert nested["methods"]["lorsu"] == lorsu_numbers and nested["sessions"] == ["pink", "hexagon"]


def test_save_load_round_trip_and_picture(result, tmp_path):
    path = result.save(tmp_path / "lorsu.safetensors")
    back = LorsuEvaluation.load(path)
    assert json.dumps(back.metrics(), sort_keys=True) == json.dumps(result.metrics(), sort_keys=True)
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(result.to_dict(), sort_keys=True)
    assert torch.equal(back.reports["lorsu"][1].fc1_masks, result.reports["lorsu"][1].fc1_masks)
    assert _non_blank(result._repr_png_())
    for picture in (result.scatter_image(), result.heads_image(), result.fc1_image(), result.curves_image()):
        assert _non_blank(_png(picture))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(MemoryFileError):
        LorsuEvaluation.load(bad)
    report_file = result.reports["lorsu"][0].save(tmp_path / "report.safetensors")
    with pytest.raises(MemoryFileError, match="LoRSU evaluation"):  # a session report is another kind
        LorsuEvaluation.load(report_file)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_the_command_table_reads_the_result(result):
    from egokit.commands.lorsu import MODEL, summary_lines

    assert MODEL == lorsu.DEFAULT_MODEL
    lines = summary_lines(result)
    assert lines[0] == "LoRSU eval on CLIPModel: 2 sessions, 2 shots, seed 3"
    assert [line.split()[0] for line in lines[3:]] == ["lorsu", "spu", "random_heads"]


def test_the_tour_section_is_registered():
    from egokit.commands.lorsu import lorsu_section
    from egokit.tour.report import SECTIONS

    assert any(s.key == "lorsu" and s.build is lorsu_section for s in SECTIONS)


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
    assert {k.split(".")[1] for k in out if k.startswith("methods.")} == {"lorsu", "full", "lora", "spu", "layernorm"}
    assert {k.split(".")[1] for k in out if k.startswith("ablations.")} == {"random_heads", "unmasked_fc1", "lora_v1"}
    for name in ("lorsu", "full", "lora", "spu", "layernorm"):
        assert {f"methods.{name}.{k}" for k in ("ti", "cc", "trainable_params", "optimizer_bytes", "seconds")} <= set(out)
    assert out["methods.lorsu.trainable_params"] < out["methods.full.trainable_params"]
    assert out["settings.quick"] is True and out["settings.shots"] == 1 and out["sessions"] == 5


def test_zero_shot_predictions_agree_with_its_accuracy():
    from egokit.methods.lorsu import ZeroShot, default_sessions, target_set

    model, processor = build_tiny("clip", seed=2)
    specs = default_sessions()[:2]
    tests = {"target": target_set(specs, 4, 1)}
    scorer = ZeroShot(model, processor, tests)
    accuracies = scorer(model)["target"]
    for session, labels in tests["target"].labels.items():
        truth = [y for y in labels if y >= 0]
        predicted = scorer.predictions(model, "target", session)
        assert len(predicted) == len(truth)
        assert sum(p == y for p, y in zip(predicted, truth)) / len(truth) == pytest.approx(accuracies[session])
