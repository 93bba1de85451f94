"""Faults on the command line and in `egokit.load`: a device that is not there, `--debug` after the
sub-command, output into a closed pipe, a hub id that is not cached, damaged or pickled weights.

Each answer is one line that says what to do, never "unexpected error" and never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import egokit
from egokit import cli
from egokit.commands import tour as tour_command
from egokit.errors import InputError, ModelLoadError
from egokit.models.tiny import build_tiny

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (64, 64), "red").save(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    model, processor = build_tiny("clip")
    folder = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _one_error_line(err: str) -> str:
    """The last line of stderr (progress bars may come before it), checked to be the kit's one line."""
    last = err.strip().splitlines()[-1]
    assert last.startswith("egokit: error: "), err
    assert "unexpected error" not in err and "Traceback" not in err
    return last


# ------------------------------------------------------------------------------ --device cuda without CUDA

COMMANDS = [
    ["explore", "{img}", "what is this?"],
    ["misalign", "score", "{img}", "a red square"],
    ["misalign", "eval"],
    ["ego", "eval"],
    ["ego", "remember", "{img}", "bix", "--bank", "{tmp}/bank.egomem"],
    ["ego", "ask", "{img}", "what is this?", "--bank", "{tmp}/bank.egomem"],
    ["pixel", "localize", "{img}"],
    ["pixel", "refer", "{img}", "the red square"],
    ["pixel", "eval"],
    ["lorsu", "eval"],
    ["sa2vp", "eval"],
    ["zoo", "eval"],
    ["zoo", "train", "clip", "--quick", "--out", "{tmp}/clip", "--run-dir", "{tmp}/run"],
    ["tour", "--out", "{tmp}/report"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_device_cuda_without_cuda_is_one_clear_line_in_every_command(argv, image, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = [a.format(img=image, tmp=tmp_path) for a in argv]
    start = time.perf_counter()
    assert cli.main([*args, "--device", "cuda"]) == 2
    assert time.perf_counter() - start < 20  # before any model is read or any work is done
    last = _one_error_line(capsys.readouterr().err)
    assert "no CUDA GPU" in last and "--device cpu" in last
    assert list(tmp_path.iterdir()) == []  # nothing written: no bank, no model, no report


# ------------------------------------------------------------------------------ --debug, closed pipes


def test_debug_is_accepted_after_the_sub_command(monkeypatch, capsys):
    def boom(args):
        raise InputError("the caption is empty: pass at least one word")

    monkeypatch.setattr(tour_command, "_run", boom)
    assert cli.main(["tour"]) == 2  # without --debug: one line
    with pytest.raises(InputError):
        cli.main(["tour", "--debug"])  # after the sub-command: the traceback
    with pytest.raises(InputError):
        cli.main(["--debug", "tour"])  # before it, as always
    parser = cli.build_parser()
    for sub in cli._sub_parsers(parser):
        assert "--debug" in sub._option_string_actions, sub.prog
    assert parser.parse_args(["data", "sample", "--out", "x", "--debug"]).debug is True
    assert parser.parse_args(["--debug", "data", "sample", "--out", "x"]).debug is True
    assert parser.parse_args(["data", "sample", "--out", "x"]).debug is False


def test_json_into_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    """`egokit ... --json | head -1`: the reader has gone when the rest is written."""

    def long_json(args):
        from egokit.commands import options

        options.emit_json({f"metric_{i}": i for i in range(20000)})
        return 0

    monkeypatch.setattr(tour_command, "_run", long_json)
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `head -1` after its line
    with open(write_end, "w", encoding="utf-8") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        code = cli.main(["tour"])
        monkeypatch.undo()
    assert code == cli.BROKEN_PIPE
    assert capsys.readouterr().err == ""


def test_console_script_into_a_closed_pipe_ends_quietly():
    """A real process as the console script runs it (`sys.exit(main())`), its stdout a pipe whose reader
    is gone: no "unexpected error", no "Exception ignored" at exit."""
    code = ("import sys\nfrom egokit import cli\nfrom egokit.commands import tour\n"
            "tour._run = lambda args: print('{\"line\": 1}\\n' * 50000) or 0\n"
            "sys.exit(cli.main(['tour']))\n")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run([sys.executable, "-c", code], stdout=write_end, stderr=subprocess.PIPE, text=True,
                           timeout=60, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    finally:
        os.close(write_end)
    assert r.returncode == cli.BROKEN_PIPE and r.stderr == "", r.stderr


# ------------------------------------------------------------------------------ hub ids


def test_uncached_hub_id_without_offline_fails_fast_and_names_the_variable(monkeypatch):
    """Without HF_HUB_OFFLINE and with the hub out of reach: under 5 s, no retries, the variable named."""
    from huggingface_hub import constants

    from egokit.models import loading

    monkeypatch.setattr(loading, "_offline", lambda: False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    for variable in loading._PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        egokit.load("egokit-tests/not-cached-anywhere-0123", device="cpu")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "HF_HUB_OFFLINE=1" in message and "not in the local cache" in message
    assert "hf download egokit-tests/not-cached-anywhere-0123" in message and "\n" not in message


def test_cached_hub_id_loads_at_once_when_the_hub_is_out_of_reach(monkeypatch, tmp_path, tiny_clip):
    """Without HF_HUB_OFFLINE, a model in the cache loads from it when the hub cannot be reached (no retries),
    and the hub's offline switch is as it was afterwards."""
    from huggingface_hub import constants

    from egokit.models import loading

    monkeypatch.setattr(loading, "_offline", lambda: False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    for variable in loading._PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    repo = tmp_path / "models--egokit-tests--cached-clip"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.parent.mkdir(parents=True)
    _copy_model(tiny_clip, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    start = time.perf_counter()
    lm = egokit.load("egokit-tests/cached-clip", device="cpu", cache_dir=str(tmp_path))
    assert time.perf_counter() - start < 5 and lm.family == "clip"
    assert constants.HF_HUB_OFFLINE is False


def test_uncached_hub_id_on_the_command_line_is_one_line(monkeypatch, image, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.main(["misalign", "score", image, "a red square", "--model", "egokit-tests/nothing-here-0123",
                     "--device", "cpu"]) == 2
    last = _one_error_line(capsys.readouterr().err)
    assert "HF_HUB_OFFLINE" in last and "egokit-tests/nothing-here-0123" in last


# ------------------------------------------------------------------------------ damaged or pickled weights


@pytest.mark.parametrize("damage", ["truncated", "zero-byte", "garbage header"])
def test_damaged_safetensors_is_one_model_load_error(damage, tiny_clip, tmp_path, image, capsys):
    folder = _copy_model(tiny_clip, tmp_path / "model")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "zero-byte": b"",
                         "garbage header": b"\xff" * 16 + data[16:]}[damage])
    with pytest.raises(ModelLoadError, match="damaged or truncated") as info:
        egokit.load(folder, device="cpu")
    assert "model.safetensors" in str(info.value) and "\n" not in str(info.value)
    assert cli.main(["misalign", "score", image, "a red square", "--model", str(folder), "--device", "cpu"]) == 2
    assert "damaged or truncated" in _one_error_line(capsys.readouterr().err)


class _RunsCode:
    """Unpickling this would create a file: what a malicious checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_bin_is_refused_because_it_could_run_code(tiny_clip, tmp_path, image, capsys):
    folder = _copy_model(tiny_clip, tmp_path / "model")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    torch.save({"vision_model.embeddings.class_embedding": _RunsCode(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="could run code") as info:
        egokit.load(folder, device="cpu")
    message = str(info.value)
    assert "weights_only" not in message and "safetensors" in message and "\n" not in message
    assert cli.main(["misalign", "score", image, "a red square", "--model", str(folder), "--device", "cpu"]) == 2
    last = _one_error_line(capsys.readouterr().err)
    assert "could run code" in last and "weights_only" not in last
    assert not marker.exists()

