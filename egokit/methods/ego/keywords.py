"""Keyword tokens of a description: which generated tokens carry the subject's look.

Ego scores the reference view's visual tokens by the attention *keyword* tokens pay them: the words of
the model's description minus punctuation and function words ("a red and blue cross with a white
ring ." → red, blue, cross, white, ring). Tokens are grouped into words by decoding the token ids
incrementally (a piece that starts with whitespace starts a new word; punctuation is its own word), so
word-level, byte-level BPE and SentencePiece tokenizers all work.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: English function words (and prompt filler) that never count as keywords.
STOPWORDS: frozenset[str] = frozenset(
    """
    a an the this that these those there here it its it's is are was were be been being am
    of in on at to from with without by for into onto over under about as and or but nor not no yes so
    than then too very just also only some any each every all both either neither one ones
    i me my we our you your he him his she her they them their what which who whom whose where when why how
    do does did has have had can could would should will shall may might must
    image picture photo photograph shows show showing shown depicts depicting depicted contains containing
    there's here's subject object main thing something
    """.split()
)

_PUNCT = set(string.punctuation) | {"…", "“", "”", "‘", "’", "·"}


@dataclass(frozen=True)
class Word:
    """A word of a description: its text and the indices of its tokens."""

    text: str
    tokens: tuple[int, ...]

    @property
    def is_punctuation(self) -> bool:
        return bool(self.text) and all(ch in _PUNCT for ch in self.text)

    @property
    def is_keyword(self) -> bool:
        core = self.text.strip(string.punctuation).lower()
        return bool(core) and not self.is_punctuation and core not in STOPWORDS


def group_words(tokenizer: Any, token_ids: Sequence[int]) -> list[Word]:
    """Split a token sequence into words (see the module docstring). Special tokens belong to no word."""
    ids = [int(i) for i in token_ids]
    words: list[tuple[str, list[int]]] = []
    previous = ""
    space_before = False  # the text so far ends with whitespace: the next piece starts a word
    pending: list[int] = []  # whitespace-only tokens: they belong to the word that follows
    for i in range(len(ids)):
        text = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
        piece = text[len(previous):] if text.startswith(previous) else tokenizer.decode([ids[i]], skip_special_tokens=True)
        previous = text
        core = piece.strip()
        if not core:
            space_before = space_before or bool(piece)
            pending.append(i)
            continue
        punct = all(ch in _PUNCT for ch in core)
        starts_new = (
            not words
            or space_before
            or piece[0].isspace()
            or punct
            or all(ch in _PUNCT for ch in words[-1][0])
        )
        space_before = piece[-1].isspace()
        if starts_new:
            words.append((core, [*pending, i]))
        else:
            words[-1] = (words[-1][0] + core, [*words[-1][1], *pending, i])
        pending = []
    return [Word(text, tuple(tok)) for text, tok in words]


def keyword_words(tokenizer: Any, token_ids: Sequence[int], keep_all: bool = False) -> list[Word]:
    """The keyword words of a description (`keep_all`: every non-punctuation word).

    Falls back to every non-punctuation word when no word survives the stop-word filter, then to every
    word, so a non-empty description always gives some rows to score with."""
    words = group_words(tokenizer, token_ids)
    if not keep_all:
        chosen = [w for w in words if w.is_keyword]
        if chosen:
            return chosen
    chosen = [w for w in words if not w.is_punctuation]
    return chosen or words


def keyword_rows(words: Sequence[Word]) -> list[int]:
    """Token indices of the given words, in order."""
    return [t for w in words for t in w.tokens]


__all__ = ["STOPWORDS", "Word", "group_words", "keyword_rows", "keyword_words"]
