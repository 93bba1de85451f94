"""Text the model cannot read is named, and a prompt over the context length is refused (issue 19, item 3.9).

Closed-vocabulary tokenizers (the micro zoo, the tiny test models) read a word outside their vocabulary as
`<unk>`: misalignment captions, the point head's `refer` expression and Ego's keywords name such words in a
`UserWarning`, or refuse the text with an `InputError` when no word of it is readable. Byte-level BPEs (real
checkpoints) read any text, so nothing is named for them. A VLM prompt longer than the model's context
length is an `InputError` naming the length and the limit, in `generate_and_look` and the point head.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import pytest
import torch

import egokit.methods.ego as ego
import egokit.methods.misalign.scoring as misalign
import egokit.methods.pixel.locate as pixel
from egokit.capture.look import generate_and_look
from egokit.data.shapesworld import ShapesWorld
from egokit.errors import InputError
from egokit.methods.pixel.head import PointHead
from egokit.models.loading import from_model
from egokit.models.text import (
    byte_bpe_tokenizer,
    check_context,
    context_limit,
    only_unknown,
    unknown_words,
)
from egokit.models.tiny import build_tiny

SCENE = ShapesWorld(seed=0, split="test").scene(2)


@functools.cache
def tiny(family: str) -> Any:
    model, processor = build_tiny(family, seed=0)
    return from_model(model, processor, name=f"tiny-{family}")


@functools.cache
def head() -> PointHead:
    torch.manual_seed(0)
    lm = tiny("llava")
    return PointHead(32, hidden=16, meta={"base_model": "tiny", "base_fingerprint": lm.fingerprint()})


def _tokenizer(family: str) -> Any:
    processor = tiny(family).processor
    return getattr(processor, "tokenizer", processor)


# ---------------------------------------------------------------------------------------------- the helper


@pytest.mark.parametrize("family", ["clip", "qwen2_vl"])
def test_word_level_tokenizers_name_their_unknown_words(family: str) -> None:
    tok = _tokenizer(family)
    assert unknown_words(tok, "the 日本 circle 🙂, café and the 日本 square") == ["日本", "🙂", "café"]
    assert unknown_words(tok, "the red circle , left of a blue square .") == []
    assert unknown_words(tok, "   ") == []
    assert only_unknown(tok, "日本 🙂") and not only_unknown(tok, "日本 circle")


def test_byte_level_bpe_has_no_unknown_words() -> None:
    tok = byte_bpe_tokenizer(["a photo of a red circle"], vocab_size=270)
    assert tok.unk_token_id is not None  # it has an unknown token, but no text maps to it
    assert unknown_words(tok, "日本 🙂 café") == [] and not only_unknown(tok, "日本 🙂")


def test_context_limit_is_the_smaller_of_model_and_tokenizer() -> None:
    lm = tiny("qwen2_vl")  # tokenizer: 1024, language model positions: 512
    assert context_limit(lm.model, _tokenizer("qwen2_vl")) == 512
    assert context_limit(tiny("llava").model, _tokenizer("llava")) == 1024
    check_context(512, 512)
    check_context(10, None)
    with pytest.raises(InputError, match=r"needs 513 tokens .* at most 512"):
        check_context(513, 512)


# ---------------------------------------------------------------------------------------------- misalignment


def test_misalign_caption_names_unknown_words() -> None:
    clip = tiny("clip")
    with pytest.warns(UserWarning, match="日本"):
        r = misalign.score(clip, SCENE.image, "a red 日本 circle", heatmaps=False)
    assert r.words == ["a", "red", "日本", "circle"]  # still scored: the warning says which words mean nothing
    with pytest.raises(InputError, match="cannot read any word.*日本.*🙂"):
        misalign.score(clip, SCENE.image, "日本 🙂", heatmaps=False)


def test_misalign_known_caption_gives_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        misalign.score(tiny("clip"), SCENE.image, "a red circle", heatmaps=False)


# ---------------------------------------------------------------------------------------------- point head


def test_refer_names_unknown_words_and_refuses_unreadable_expressions() -> None:
    lm = tiny("llava")
    with pytest.warns(UserWarning, match="🙂"):
        pixel.refer(lm, head(), SCENE, "the red 🙂 circle", keep_image=False)
    with pytest.raises(InputError, match="cannot read any word.*日本"):
        pixel.refer(lm, head(), SCENE, "日本", keep_image=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = pixel.refer(lm, head(), SCENE, "the red circle", keep_image=False)
    assert r.words == ["the", "red", "circle"]


def test_point_head_refuses_a_prompt_over_the_context_length() -> None:
    lm = tiny("llava")
    with pytest.raises(InputError, match=r"needs \d+ tokens .* at most 1024 \(its context length\)"):
        pixel.localize(lm, head(), SCENE, prompt=" ".join(["red"] * 1100), answer="red")
    # the text fits, but not with the image's tokens
    with pytest.raises(InputError, match=r"at most 1024"):
        pixel.localize(lm, head(), SCENE, prompt=" ".join(["red"] * 1000), answer="red")


# ---------------------------------------------------------------------------------------------- Ego


def test_ego_keywords_name_unknown_words() -> None:
    lm = tiny("llava")
    with pytest.warns(UserWarning, match="日本"):
        memory = ego.remember(lm, SCENE, "bix", selection="uniform", budget=4, keywords=["red", "日本"])
    assert memory.keywords  # still remembered
    with pytest.raises(InputError, match="cannot read any word.*日本"):
        ego.remember(lm, SCENE, "bix", selection="uniform", budget=4, keywords=["日本", "🙂"])
    with pytest.raises(InputError, match="cannot read any word"):
        ego.look_at(lm, SCENE, keywords=["日本"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ego.remember(lm, SCENE, "bix", selection="uniform", budget=4, keywords=["red", "circle"])


# ---------------------------------------------------------------------------------------------- generate_and_look


def test_generate_and_look_refuses_a_prompt_over_the_context_length() -> None:
    lm = tiny("llava")
    with pytest.raises(InputError, match=r"the prompt needs \d+ tokens .* at most 1024"):
        generate_and_look(lm, SCENE.image, " ".join(["red"] * 1100), max_new_tokens=2)
    with pytest.raises(InputError, match=r"the prompt and answer needs \d+ tokens .* at most 1024"):
        generate_and_look(lm, SCENE.image, " ".join(["red"] * 900), answer=" ".join(["red"] * 100))
