"""MisalignmentResult: derived flags, re-flagging at another ε, pictures, HTML, save/load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import egokit.methods.misalign.scoring as misalign
from egokit.errors import MemoryFileError
from egokit.methods.misalign.result import MisalignmentResult
from egokit.models.tiny import build_tiny

PNG = b"\x89PNG\r\n\x1a\n"


def _manual(**kw) -> MisalignmentResult:
    base = dict(caption="a red big box .", words=["a", "red", "big", "box", "."],
                scores=torch.tensor([0.2, -0.3, -0.1, 0.4, -0.9]), similarity=0.25, eps=-0.05)
    base.update(kw)
    return MisalignmentResult(**base)


def test_flags_phrases_and_fclipscore():
    r = _manual()
    assert r.flagged == [1, 2] and r.flagged_words == ["red", "big"]  # "." is never flagged
    assert r.phrases == [{"start": 1, "end": 3, "text": "red big"}]
    assert r.most_negative == 1
    assert r.fclipscore == pytest.approx(0.75 * -0.4)
    assert r.clipscore == pytest.approx(0.625)
    strict = r.with_eps(-0.2)
    assert strict.flagged == [1] and strict.fclipscore == pytest.approx(0.75 * -0.3)
    assert r.flagged == [1, 2]  # the original is unchanged
    assert r.fclipscore_most_negative == pytest.approx(0.75 * -0.3)
    negative = _manual(similarity=-0.5)
    assert negative.clipscore == 0.0 and negative.fclipscore == pytest.approx(-0.4)  # 1 − max(s, 0) = 1
    d = r.to_dict()
    json.dumps(d)
    assert d["most_negative_word"] == "red" and d["flagged"] == [1, 2]


def test_repr_html_colours_words_and_marks_flags():
    page = _manual()._repr_html_()
    assert page.count("<span") == 5 and "text-decoration: underline" in page
    assert "rgba(214,39,40" in page and "rgba(31,119,180" in page
    assert "F-CLIPScore" in page
    escaped = _manual(words=["a", "red", "big", "box", "<b>"])._repr_html_()
    assert "<b>" not in escaped and "&lt;b&gt;" in escaped


def test_picture_without_image_is_the_caption_strip():
    r = _manual()
    assert r._repr_png_().startswith(PNG)
    assert r.to_image().width == 256


@pytest.fixture(scope="module")
def scored():
    image = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)  # non-square: center crop
    return misalign.score(build_tiny("clip"), image, "a large red striped circle left of a blue square .")


def test_save_load_round_trip(tmp_path, scored):
    path = scored.save(tmp_path / "r.safetensors")
    back = MisalignmentResult.load(path)
    assert not list(tmp_path.glob(".*tmp"))
    for name in ("caption", "words", "similarity", "eps", "variant", "template", "layers", "tokens", "token_word",
                 "grid", "dropped_words", "model_name", "flagged", "phrases", "most_negative"):
        assert getattr(back, name) == getattr(scored, name), name
    for name in ("scores", "token_scores", "heatmaps", "boxes"):
        torch.testing.assert_close(getattr(back, name), getattr(scored, name).float())
    assert np.array_equal(back.image, scored.image) and back.image.shape == (48, 80, 3)
    assert back._repr_png_() == scored._repr_png_()


def test_load_refuses_damaged_or_foreign_files(tmp_path, scored):
    from safetensors.torch import save_file

    path = scored.save(tmp_path / "r.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"egokit": "{}"})
    for name in ("cut", "junk", "other", "missing"):
        with pytest.raises(MemoryFileError):
            MisalignmentResult.load(tmp_path / f"{name}.safetensors")


def test_heatmap_picture_follows_the_chosen_word(scored):
    a = scored.heatmap_image(0).tobytes()
    b = scored.heatmap_image("red").tobytes()
    assert a != b
    assert scored.to_image("red").height > scored.heatmap_image("red").height
