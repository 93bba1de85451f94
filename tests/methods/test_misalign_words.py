"""Token → word mapping and merging: word-level and byte-level BPE tokenizers (words split into several
pieces), flagging rules and phrases."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPProcessor

import egokit.methods.misalign.scoring as misalign
from egokit.methods.misalign.inputs import PAPER_TEMPLATE
from egokit.methods.misalign.words import (
    flag_below,
    merge_to_words,
    most_negative,
    phrases,
    token_words,
    word_spans,
)
from egokit.models.text import byte_bpe_tokenizer
from egokit.models.tiny import build_tiny

CORPUS = ["a photo depicts a red circle", "a small blue square", "two green things"] * 3
CAPTION = "a checkered hexagon beside an enormous turquoise pentagon"


@pytest.fixture(scope="module")
def bpe_clip():
    """A tiny CLIP whose tokenizer is a byte-level BPE with so few merges that long words split."""
    tok = byte_bpe_tokenizer(CORPUS, vocab_size=290, add_eos=True, padding_side="right", model_max_length=64)
    model, processor = build_tiny(
        "clip", seed=0,
        text_config={"vocab_size": len(tok), "max_position_embeddings": 64, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
    )
    return model, CLIPProcessor(image_processor=processor.image_processor, tokenizer=tok)


def test_word_spans_and_token_words_with_shifted_offsets():
    assert word_spans("a  red circle") == [(0, 1), (3, 6), (7, 13)]
    spans = word_spans("red circle")
    # template "A photo " (8 chars): tokens of the template map to -1; a piece carrying the leading space
    # (byte-level BPE "Ġcir") still belongs to the word it overlaps; (0, 0) is a special token
    offsets = [(0, 0), (0, 1), (2, 7), (8, 11), (11, 15), (15, 18), (0, 0)]
    assert token_words(offsets, spans, shift=8) == [-1, -1, -1, 0, 1, 1, -1]


def test_merge_averages_pieces_and_leaves_missing_words_nan():
    scores = torch.tensor([9.0, 1.0, 3.0, -2.0, 9.0])
    merged = merge_to_words(scores, [-1, 0, 0, 2, -1], 3)
    assert merged[0] == 2.0 and merged[2] == -2.0 and torch.isnan(merged[1])


def test_flags_most_negative_and_phrases():
    scores = torch.tensor([0.1, -0.3, -0.2, 0.4, -0.5, float("nan")])
    eligible = torch.tensor([True, True, True, True, False, True])  # word 4 is punctuation
    eligible = eligible & ~torch.isnan(scores)
    assert flag_below(scores, eligible, -0.1) == [1, 2]
    assert most_negative(scores, eligible) == 1
    words = ["a", "red", "big", "box", ".", "x"]
    assert phrases([1, 2, 4], words) == [{"start": 1, "end": 3, "text": "red big"},
                                         {"start": 4, "end": 5, "text": "."}]
    assert most_negative(scores, torch.zeros(6, dtype=torch.bool)) is None


def test_bpe_words_split_into_several_pieces_are_merged(bpe_clip):
    image = torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()
    r = misalign.score(bpe_clip, image, CAPTION, heatmaps=False)
    assert r.template == PAPER_TEMPLATE  # an open vocabulary knows every template word
    assert r.words == CAPTION.split()
    pieces = {i: [t for t, w in enumerate(r.token_word) if w == i] for i in range(len(r.words))}
    assert all(pieces[i] for i in pieces)  # every word got its tokens
    multi = [i for i, p in pieces.items() if len(p) > 1]
    assert len(multi) >= 4  # "checkered", "hexagon", "enormous", "turquoise", "pentagon" split
    tok = bpe_clip[1].tokenizer
    for i, p in pieces.items():
        ids = tok.convert_tokens_to_ids([r.tokens[t] for t in p])
        assert tok.decode(ids).strip() == r.words[i]  # the pieces spell the word
        assert float(r.scores[i]) == pytest.approx(float(r.token_scores[p].mean()), rel=1e-6, abs=1e-12)
    # the template's tokens belong to no word
    n_template = len(tok(PAPER_TEMPLATE.strip(), add_special_tokens=False)["input_ids"])
    assert r.token_word[: 1 + n_template] == [-1] * (1 + n_template)


def test_bpe_batch_with_padding_matches_single(bpe_clip):
    image = torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()
    caps = [CAPTION, "a red circle", "turquoise"]
    batch = misalign.score_batch(bpe_clip, image, caps)
    for c, b in zip(caps, batch):
        s = misalign.score(bpe_clip, image, c, heatmaps=False)
        torch.testing.assert_close(b.scores, s.scores, atol=1e-8, rtol=1e-4)
