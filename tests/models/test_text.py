"""Offline tokenizers: ids contract, special tokens, chat template, save/load round trip."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from egokit.models.text import TINY_WORDS, byte_bpe_tokenizer, chat_template, word_tokenizer

MESSAGES = [
    {
        "role": "user",
        "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Is a red circle here?"}],
    },
    {"role": "assistant", "content": "yes"},
    {"role": "user", "content": "and blue?"},
]


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer(
        ["red", "blue", "circle", "two-tone", "is", "a", "here", "and", "yes"],
        extra_special_tokens={"image_token": "<image>"},
    )


def test_ids_contract(tok):
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)
    assert tok.image_token == "<image>" and tok.image_token_id == 4
    vocab = tok.get_vocab()
    assert vocab["user"] == 5 and vocab["assistant"] == 6 and vocab[":"] == 7
    assert "two" in vocab and "tone" in vocab and "-" in vocab  # split like text is
    assert len(tok) == len(vocab) < 40


def test_encoding(tok):
    ids = tok("<image><image> A RED circle?! zebra").input_ids
    assert tok.convert_ids_to_tokens(ids) == [
        "<s>",
        "<image>",
        "<image>",
        "a",
        "red",
        "circle",
        "?",
        "!",
        "<unk>",
    ]
    assert tok("red", add_special_tokens=False).input_ids == [tok.convert_tokens_to_ids("red")]
    batch = tok(["red", "a red circle"], padding=True)
    assert batch.input_ids[0][0] == tok.pad_token_id  # left padding by default


def test_chat_template(tok):
    text = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text == "USER: <image> <image> Is a red circle here? ASSISTANT: yes</s> USER: and blue? ASSISTANT:"
    assert tok.unk_token_id not in tok(text).input_ids
    without = tok.apply_chat_template(MESSAGES[:1], tokenize=False)
    assert not without.endswith("ASSISTANT:")
    assert "<img>" in chat_template("<img>") and "'" in chat_template("it's")


def test_eos_and_no_bos():
    clip_like = word_tokenizer(["red"], add_bos=False, add_eos=True, padding_side="right")
    assert clip_like("red").input_ids == [clip_like.convert_tokens_to_ids("red"), clip_like.eos_token_id]
    with pytest.raises(ValueError, match="extra_special_tokens"):
        word_tokenizer(["red"], special_tokens={"image_token": "<image>"})


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_save_and_load_roundtrip(tmp_path, kind):
    if kind == "word":
        tok = word_tokenizer(TINY_WORDS, extra_special_tokens={"image_token": "<image>"})
    else:
        tok = byte_bpe_tokenizer(
            ["a red circle is in the image", "two blue squares"] * 5,
            extra_special_tokens={"image_token": "<image>"},
        )
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<image> <image> what colour is the zebra ?"
    assert loaded(text).input_ids == tok(text).input_ids
    assert loaded.image_token_id == tok.image_token_id
    assert loaded.padding_side == tok.padding_side
    assert loaded.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == (
        tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    )
    if kind == "bpe":
        assert tok.unk_token_id not in tok("zebra ñ").input_ids  # open vocabulary
        assert tok.decode(tok("a red zebra").input_ids, skip_special_tokens=True) == "a red zebra"
