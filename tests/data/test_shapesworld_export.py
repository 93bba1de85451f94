"""`write_samples` and `egokit data sample`: byte-identical files for a seed, clear errors otherwise."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from egokit import cli
from egokit.data.export import GROUND_TRUTH_FILE, write_samples
from egokit.data.scenes import rle_decode
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import InputError


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = write_samples(tmp_path / "a", seed=7, n=5, size=64)
    b = write_samples(tmp_path / "b", seed=7, n=5, size=64)
    c = write_samples(tmp_path / "c", seed=8, n=5, size=64)
    ha, hb, hc = hashes(a), hashes(b), hashes(c)
    assert sorted(ha) == [GROUND_TRUTH_FILE, *(f"scene_{i:04d}.png" for i in range(5))]
    assert ha == hb
    assert ha != hc and all(ha[k] != hc[k] for k in ha)
    write_samples(tmp_path / "a", seed=7, n=5, size=64)  # writing again over the same files
    assert hashes(a) == ha
    assert not [p for p in a.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_files_hold_the_scenes(tmp_path):
    out = write_samples(tmp_path / "s", seed=2, n=4, size=96)
    doc = json.loads((out / GROUND_TRUTH_FILE).read_text())
    assert doc["n"] == 4 and doc["generator"]["seed"] == 2 and doc["generator"]["size"] == 96
    sw = ShapesWorld(seed=2, size=96, patch=8)
    for i, entry in enumerate(doc["scenes"]):
        scene = sw.scene(i)
        img = np.asarray(Image.open(out / entry["file"]).convert("RGB"))
        assert np.array_equal(img, scene.image)
        assert entry["caption"] == scene.caption
        for o, od in zip(scene.objects, entry["objects"]):
            assert np.array_equal(rle_decode(od["mask_rle"]), o.mask)
            assert od["box"] == list(o.box)
    with Image.open(out / doc["scenes"][0]["file"]) as im:
        assert "timestamp" not in im.info and "date" not in str(im.info).lower()


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "--n"), ({"n": -3}, "--n"), ({"size": 16}, "--size"), ({"size": 65}, "--size"),
    ({"seed": -1}, "--seed"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    args = {"seed": 0, "n": 2, "size": 64, **kwargs}
    with pytest.raises(InputError, match=match):
        write_samples(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()


def test_output_path_that_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("hello")
    with pytest.raises(InputError, match="not a folder"):
        write_samples(f, seed=0, n=1, size=64)


def test_cli_data_sample(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["data", "sample", "--seed", "3", "--n", "3", "--out", str(out)]) == 0
    assert "wrote 3 scenes" in capsys.readouterr().out
    assert hashes(out) == hashes(write_samples(tmp_path / "direct", seed=3, n=3, size=64))
    with pytest.raises(SystemExit) as refused:  # checked when the options are parsed, before any work
        cli.main(["data", "sample", "--n", "0", "--out", str(tmp_path / "bad")])
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --n: must be a whole number between 1 and" in err
    assert not (tmp_path / "bad").exists()
