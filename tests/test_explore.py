import json

import numpy as np
import pytest
import torch

from egokit.cli import main
from egokit.errors import CapabilityError, InputError, MemoryFileError
from egokit.methods.explore import VIEWS, Exploration, explore
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny


def picture():
    return (np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8")


@pytest.fixture(scope="module")
def loaded():
    model, processor = build_tiny("llava")
    return from_model(model, processor)


def test_views_and_rollout(loaded):
    r = explore(loaded, picture(), "what color is the circle ?", max_new_tokens=3)
    n = len(r.look.layout[0])
    for view in ("attention", "rollout", "gradient"):
        assert r.scores(0, view).shape == (n,)
    # the mean attention view is the mean of the per-layer, per-head rows
    att = r.look.attentions[:, :, 0, r.look.columns(0)]
    torch.testing.assert_close(r.scores(0, "attention"), att.mean((0, 1)))
    torch.testing.assert_close(r.scores(0, "attention", layer=1, head=0), att[1, 0])
    # rollout rows of a token are a distribution over all positions: the visual part is at most 1
    assert (r.rollout_rows >= 0).all() and (r.rollout_rows.sum(-1) <= 1 + 1e-5).all()
    assert r.memory.full_bytes > r.memory.targeted_bytes
    with pytest.raises(InputError, match="unknown view"):
        r.scores(0, "saliency")
    with pytest.raises(InputError, match="layer"):
        r.scores(0, "attention", layer=99)
    assert r._repr_png_().startswith(b"\x89PNG")
    json.dumps(r.to_dict())


def test_an_exploration_round_trips_through_its_file(loaded, tmp_path):
    r = explore(loaded, picture(), "what color is the circle ?", max_new_tokens=3)
    path = r.save(tmp_path / "look.safetensors")
    again = Exploration.load(path)
    assert again.to_dict() == r.to_dict()
    assert again.tokens == r.tokens and again.answer == r.answer and again.notes == r.notes
    assert again.memory == r.memory and again.default_token() == r.default_token()
    for view in VIEWS:
        for t in range(len(r.tokens)):
            torch.testing.assert_close(again.scores(t, view), r.scores(t, view), rtol=0, atol=0)
    torch.testing.assert_close(again.scores(0, "attention", layer=1, head=0), r.scores(0, "attention", layer=1, head=0))
    for a, b in zip(again.look.layout, r.look.layout):
        assert torch.equal(a.positions, b.positions) and torch.equal(a.boxes, b.boxes) and a.grid == b.grid
        assert a.extra.keys() == b.extra.keys()
    assert np.array_equal(np.asarray(again.image), np.asarray(r.image.convert("RGB")))
    assert again._repr_png_() == r._repr_png_()
    skipped = explore(loaded, picture(), "what color is it ?", max_new_tokens=2, rollout=False)
    again = Exploration.load(skipped.save(tmp_path / "skipped.safetensors"))
    assert again.rollout_rows is None and again.to_dict() == skipped.to_dict()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MemoryFileError):
        Exploration.load(bad)


def test_the_explorer_needs_a_model_that_generates_text():
    clip = from_model(*build_tiny("clip"))
    with pytest.raises(CapabilityError, match="the explorer.*generates text"):
        explore(clip, picture(), "what color is the circle ?")


def test_rollout_can_be_skipped(loaded):
    r = explore(loaded, picture(), "what color is it ?", max_new_tokens=2, rollout=False)
    assert r.rollout_rows is None and r.notes
    with pytest.raises(InputError, match="rollout"):
        r.scores(0, "rollout")
    assert r._repr_png_().startswith(b"\x89PNG")


def test_cli_explore(tmp_path, loaded, capsys):
    folder = tmp_path / "tiny-llava"
    loaded.model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    img = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(picture()).save(img)
    out = tmp_path / "heat.png"
    assert main(["explore", str(img), "what color is the circle ?", "--model", str(folder), "--out", str(out),
                 "--max-new-tokens", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"] and data["memory"]["full_bytes"] > 0
    assert out.read_bytes().startswith(b"\x89PNG")
    # mistakes a participant can make: one line, non-zero exit
    assert main(["explore", str(tmp_path / "missing.png"), "hi", "--model", str(folder)]) == 2
    assert main(["explore", str(img), "   ", "--model", str(folder)]) == 2
    assert main(["explore", str(img), "hi", "--model", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("egokit: error:") == 3
