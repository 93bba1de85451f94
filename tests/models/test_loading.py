"""`egokit.load`: sources, offline errors, devices and dtypes, `from_model`, fingerprints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

import egokit
from egokit.errors import ModelLoadError
from egokit.models import loading
from egokit.models.loading import LoadedModel, from_model, model_fingerprint, resolve_device, resolve_dtype
from egokit.models.tiny import build_tiny


@pytest.fixture(scope="module")
def saved_clip(tmp_path_factory):
    model, processor = build_tiny("clip")
    folder = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model, processor


def test_public_exports():
    assert egokit.load is loading.load and egokit.LoadedModel is LoadedModel


def test_offline_hub_id_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        egokit.load("egokit-tests/no-such-model-0123")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "egokit-tests/no-such-model-0123" in message
    assert "HF_HUB_OFFLINE" in message and "not in the local cache" in message
    assert "download egokit-tests/no-such-model-0123" in message  # how to get the weights
    assert "local folder" in message


def test_offline_hub_id_fails_in_a_fresh_process(tmp_path):
    """The same answer from a cold start, as a person would see it (imports included). How long it takes
    is measured by `benchmarks/offline_load.py` (wall-clock bounds do not belong in unit tests)."""
    code = (
        "import egokit\n"
        "try:\n    egokit.load('llava-hf/llava-1.5-7b-hf')\n"
        "except egokit.ModelLoadError as e:\n    print('ModelLoadError', e)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.startswith("ModelLoadError"), out.stderr[-2000:]
    assert "HF_HUB_OFFLINE" in out.stdout and "Traceback" not in out.stderr


def test_missing_folder_file_and_folder_without_config(tmp_path, saved_clip):
    with pytest.raises(ModelLoadError, match="no folder"):
        egokit.load(str(tmp_path / "does-not-exist"))
    with pytest.raises(ModelLoadError, match="no folder"):
        egokit.load(tmp_path / "does-not-exist")  # a Path is never taken for a hub id
    with pytest.raises(ModelLoadError, match="no folder"):
        egokit.load("./relative/missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no config.json") as info:
        egokit.load(empty)
    assert "weights.bin" in str(info.value)
    folder, _, _ = saved_clip
    with pytest.raises(ModelLoadError, match="is a file"):
        egokit.load(folder / "config.json")


def test_unknown_and_missing_model_type(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError) as info:
        egokit.load(folder)
    message = str(info.value)
    assert "'bert'" in message and "does not support" in message
    for family in ("clip", "siglip", "llava", "llava_onevision"):
        assert family in message
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ModelLoadError, match="no model_type"):
        egokit.load(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json"):
        egokit.load(folder)


def test_micro_model_not_built_yet():
    with pytest.raises(ModelLoadError) as info:
        egokit.load("micro-does-not-exist")
    message = str(info.value)
    assert "not built yet" in message and "micro-does-not-exist" in message
    assert str(loading.ZOO_DIR / "micro-does-not-exist") in message


def test_micro_model_name_resolves_inside_the_package(saved_clip, monkeypatch, tmp_path):
    folder, model, _ = saved_clip
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "micro-test").symlink_to(folder, target_is_directory=True)
    monkeypatch.setattr(loading, "ZOO_DIR", zoo)
    assert loading.micro_models() == ["micro-test"]
    lm = egokit.load("micro-test", device="cpu")
    assert lm.name == "micro-test" and lm.family == "clip"
    assert lm.fingerprint() == model_fingerprint(model)


def test_missing_processor_files(tmp_path):
    model, _ = build_tiny("clip")
    model.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="processor"):
        egokit.load(tmp_path)


def test_processor_argument_skips_processor_files(tmp_path):
    model, processor = build_tiny("clip")
    model.save_pretrained(tmp_path)
    lm = egokit.load(tmp_path, processor=processor)
    assert lm.processor is processor


def test_device_auto_on_cpu(saved_clip, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelLoadError, match="unknown device"):
        resolve_device("gpu-please")
    folder, _, _ = saved_clip
    lm = egokit.load(folder)  # device="auto"
    assert lm.device == torch.device("cpu") and lm.dtype == torch.float32
    assert not lm.model.training
    assert lm.model.config._attn_implementation == "sdpa"
    text = repr(lm)
    assert "family='clip'" in text and "device='cpu'" in text and "float32" in text


def test_one_device_resolver_with_one_clear_message(saved_clip, monkeypatch):
    """`cuda` without CUDA, a GPU index that is not there, an unknown name: one `DeviceError` (both an
    `InputError` and a `ModelLoadError`) that says what to pass, before any file is read."""
    from egokit.errors import InputError
    from egokit.models.loading import DeviceError
    from egokit.tour import report

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for asked in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(DeviceError, match="no CUDA GPU is available.*--device cpu or auto") as info:
            resolve_device(asked)
        assert isinstance(info.value, InputError) and isinstance(info.value, ModelLoadError)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        report.resolve_device("cuda")  # the tour asks the same resolver
    folder, _, _ = saved_clip
    monkeypatch.setattr(loading, "_resolve", lambda *a, **k: pytest.fail("the folder was read first"))
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        egokit.load(folder, device="cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match="has 1 CUDA GPU.*cuda:0"):
        resolve_device("cuda:3")
    for bad in ("tpu", "meta", "gpu-please", 3.5):
        with pytest.raises(DeviceError, match="unknown device"):
            resolve_device(bad)


def test_dtype_rules():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_dtype(None, cpu, "bfloat16") == torch.float32
    assert resolve_dtype(None, cuda, "float16") == torch.float16
    assert resolve_dtype(None, cuda, "bfloat16") == torch.bfloat16
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("auto", cpu, "float16") == torch.float16
    assert resolve_dtype("auto", cpu, None) == torch.float32
    assert resolve_dtype(torch.float16, cpu) == torch.float16
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        resolve_dtype("int3", cpu)


def test_attn_implementation_and_dtype_pass_through(saved_clip):
    folder, model, _ = saved_clip
    lm = egokit.load(folder, dtype="bfloat16", attn_implementation="eager")
    assert lm.dtype == torch.bfloat16
    assert lm.model.config.vision_config._attn_implementation == "eager"
    # the fingerprint does not depend on the dtype the weights were loaded in
    assert lm.fingerprint() == model_fingerprint(model)


def test_from_model_and_fingerprints():
    model, processor = build_tiny("clip")
    lm = from_model(model, processor)
    assert lm.family == "clip" and lm.device == torch.device("cpu")
    assert "in-memory CLIPModel" in lm.name
    fp = lm.fingerprint()
    assert len(fp) == 16 and fp == lm.fingerprint() == model_fingerprint(model)
    assert model_fingerprint(build_tiny("clip", seed=0)[0]) == fp  # same seed, same model
    assert model_fingerprint(build_tiny("clip", seed=1)[0]) != fp
    # a change in the config that matters changes it; loading details do not
    other, _ = build_tiny("clip", logit_scale_init_value=1.0)
    with torch.no_grad():
        other.load_state_dict(model.state_dict())
    assert model_fingerprint(other) != fp
    with torch.no_grad():
        model.text_model.final_layer_norm.weight[0] += 0.5
    assert model_fingerprint(model) != fp
    with pytest.raises(ModelLoadError):
        from_model(torch.nn.Linear(2, 2))
