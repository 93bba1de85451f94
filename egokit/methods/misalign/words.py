"""Words of a caption for the misalignment method: token → word maps, merging, flagging, phrases.

A *word* is a run of non-space characters of the caption (``caption.split()``), so word indices match
ShapesWorld's foil indices and what a person sees. Tokens are mapped to words through the character
offsets a fast tokenizer returns, which works the same for a word-level tokenizer (one token per word)
and for byte-level BPE (``" checkered"`` → ``" che" "cker" "ed"``): a token belongs to the word its
characters overlap; template tokens and special tokens (bos, eos, padding) belong to no word (-1).
A word's score is the mean of its tokens' scores.

Words made only of punctuation (ShapesWorld's final ``"."``) get a score but are never flagged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

_WORD = re.compile(r"\S+")


def word_spans(caption: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the whitespace-separated words of `caption`."""
    return [(m.start(), m.end()) for m in _WORD.finditer(caption)]


def token_words(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]], shift: int = 0
                ) -> list[int]:
    """For each token (character offsets into the full text), the index of the caption word it overlaps.

    spans:  word spans in the caption; `shift` is where the caption starts in the full text (the
            template's length). Tokens with an empty span (special tokens, padding) or overlapping no
            word (template, spaces) get -1.
    """
    out = []
    for start, end in offsets:
        word = -1
        if end > start:
            for i, (ws, we) in enumerate(spans):
                if max(start, ws + shift) < min(end, we + shift):
                    word = i
                    break
        out.append(word)
    return out


def merge_to_words(token_scores: torch.Tensor, token_word: Sequence[int], n_words: int) -> torch.Tensor:
    """Mean of the token scores of each word → (n_words,) float; NaN for a word with no token."""
    index = torch.as_tensor(list(token_word), dtype=torch.long)
    scores = token_scores.detach().float().cpu().reshape(-1)[: len(index)]
    keep = index >= 0
    total = torch.zeros(n_words).index_add_(0, index[keep], scores[keep])
    count = torch.zeros(n_words).index_add_(0, index[keep], torch.ones(int(keep.sum())))
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def is_content_word(word: str) -> bool:
    """True unless the word is only punctuation or symbols (such words are never flagged)."""
    return any(ch.isalnum() for ch in word)


def eligible_mask(words: Sequence[str], scores: torch.Tensor) -> torch.Tensor:
    """Words that may be flagged: content words with a score."""
    content = torch.tensor([is_content_word(w) for w in words], dtype=torch.bool)
    return content & ~torch.isnan(scores.float())


def flag_below(scores: torch.Tensor, eligible: torch.Tensor, eps: float) -> list[int]:
    """Indices of eligible words with score < eps (the multi-error rule)."""
    return [i for i in range(len(scores)) if bool(eligible[i]) and float(scores[i]) < eps]


def most_negative(scores: torch.Tensor, eligible: torch.Tensor) -> int | None:
    """Index of the lowest-scoring eligible word (the single-foil rule); None when no word is eligible.
    Ties go to the first such word."""
    if not bool(eligible.any()):
        return None
    masked = torch.where(eligible, scores.float(), torch.full_like(scores.float(), float("inf")))
    return int(torch.argmin(masked))


def phrases(flagged: Sequence[int], words: Sequence[str]) -> list[dict[str, object]]:
    """Merge runs of adjacent flagged words into phrases: ``{"start", "end" (exclusive), "text"}``."""
    runs: list[list[int]] = []
    for i in sorted(set(int(i) for i in flagged)):
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return [{"start": r[0], "end": r[-1] + 1, "text": " ".join(words[j] for j in r)} for r in runs]


__all__ = [
    "eligible_mask",
    "flag_below",
    "is_content_word",
    "merge_to_words",
    "most_negative",
    "phrases",
    "token_words",
    "word_spans",
]
