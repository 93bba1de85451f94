"""Keyword tokens of a description, with word-level and byte-level BPE tokenizers."""

from __future__ import annotations

from egokit.methods.ego.keywords import group_words, keyword_rows, keyword_words
from egokit.models.text import TINY_WORDS, byte_bpe_tokenizer, word_tokenizer


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_word_level_keywords() -> None:
    tok = word_tokenizer([*TINY_WORDS, "ring"])
    ids = _ids(tok, "a red and blue cross with a white ring .")
    words = group_words(tok, ids)
    assert [w.text for w in words] == ["a", "red", "and", "blue", "cross", "with", "a", "white", "ring", "."]
    keys = keyword_words(tok, ids)
    assert [w.text for w in keys] == ["red", "blue", "cross", "white", "ring"]
    assert keyword_rows(keys) == [1, 3, 4, 7, 8]


def test_bpe_words_span_several_tokens() -> None:
    texts = ["a red circle", "a striped hexagon with a ring", "the photo shows a dog"] * 20
    tok = byte_bpe_tokenizer(texts, vocab_size=280)
    ids = _ids(tok, "a striped hexagonal thing, shown.")
    words = group_words(tok, ids)
    assert [w.text for w in words] == ["a", "striped", "hexagonal", "thing", ",", "shown", "."]
    assert sum(len(w.tokens) for w in words) == len(ids)
    assert [w.text for w in keyword_words(tok, ids)] == ["striped", "hexagonal"]


def test_fallbacks_never_return_nothing() -> None:
    tok = word_tokenizer(TINY_WORDS)
    ids = _ids(tok, "it is the one .")
    assert [w.text for w in keyword_words(tok, ids)] == ["it", "is", "the", "one"]
    assert [w.text for w in keyword_words(tok, _ids(tok, "red circle ."), keep_all=True)] == ["red", "circle"]
