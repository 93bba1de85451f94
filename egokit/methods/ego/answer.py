"""What `ask` returns (`Answer`), and how a yes/no answer's probability is read from the first answer token.

`p_yes` is the softmax of the first answer token over the prompt format's yes and no words (their first
token ids, `answer_ids`): P(yes) = sigmoid(logsumexp(yes logits) − logsumexp(no logits)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from egokit.results import Result


def answer_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """First token id of each answer word (deduplicated; unknown words left out)."""
    out: list[int] = []
    for w in words:
        ids = tokenizer(w, add_special_tokens=False)["input_ids"]
        ids = ids[0] if ids and isinstance(ids[0], list) else ids
        if ids and ids[0] not in out and ids[0] != getattr(tokenizer, "unk_token_id", None):
            out.append(int(ids[0]))
    return out


def p_yes(logits: torch.Tensor, yes: Sequence[int], no: Sequence[int]) -> float | None:
    """Probability of yes over yes+no from the first answer token's logits (None without both)."""
    if not yes or not no:
        return None
    ly = torch.logsumexp(logits[list(yes)], 0)
    ln = torch.logsumexp(logits[list(no)], 0)
    return float(torch.sigmoid(ly - ln))


@dataclass(repr=False)
class Answer(Result):
    """What `ask` returns.

    text:      the answer (greedy). For per-frame video questions: "yes"/"no" from the frames.
    p_yes:     P(yes) over the format's yes/no words at the first answer token (meaningful for yes/no
               questions; for video, the largest over frames).
    concepts:  the concepts put in the context (after pre-filtering), in order.
    memory_tokens, context_tokens: memory tokens given, and the context's total length.
    frames:    per-frame answers (video asked frame by frame), else empty.
    prompt:    the rendered prompt (one placeholder per memory and image).
    """

    FILE_KIND: ClassVar[str] = "egokit.ego.answer"
    FILE_VERSION: ClassVar[int] = 1
    FILE_WHAT: ClassVar[str | None] = "Ego answer"

    text: str
    p_yes: float | None
    concepts: list[str]
    memory_tokens: int
    context_tokens: int
    seconds: float
    prompt: str = ""
    frames: list[Answer] = field(default_factory=list)

    @property
    def yes(self) -> bool:
        """The yes/no decision: p_yes > 0.5 (else the text starts with yes)."""
        if self.p_yes is not None:
            return self.p_yes > 0.5
        return self.text.strip().lower().startswith("yes")

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "p_yes": self.p_yes, "concepts": self.concepts,
                "memory_tokens": self.memory_tokens, "context_tokens": self.context_tokens,
                "seconds": self.seconds, "prompt": self.prompt, "frames": [f.to_dict() for f in self.frames]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        """The inverse of `to_dict`."""
        return cls(text=str(d["text"]), p_yes=None if d["p_yes"] is None else float(d["p_yes"]),
                   concepts=[str(c) for c in d["concepts"]], memory_tokens=int(d["memory_tokens"]),
                   context_tokens=int(d["context_tokens"]), seconds=float(d["seconds"]), prompt=str(d["prompt"]),
                   frames=[cls.from_dict(f) for f in d["frames"]])

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Answer:
        return cls.from_dict(meta["answer"])

    def _file_meta(self) -> dict[str, Any]:
        return {"answer": self.to_dict()}

    def to_image(self) -> Any:
        """The answer, its P(yes), the concepts in context and the sizes, as a small table."""
        from egokit.viz.table import metrics_table_picture

        rows: dict[str, Any] = {"answer": self.text, "p_yes": "-" if self.p_yes is None else round(self.p_yes, 4),
                                "concepts": ", ".join(self.concepts) or "(none)",
                                "memory tokens": self.memory_tokens, "context tokens": self.context_tokens}
        for i, f in enumerate(self.frames):
            rows[f"frame {i}"] = f"{f.text} (p_yes {f.p_yes:.3f})" if f.p_yes is not None else f.text
        return metrics_table_picture(rows, title="Ego answer")

    def __repr__(self) -> str:
        p = "" if self.p_yes is None else f", p_yes={self.p_yes:.3f}"
        return f"Answer({self.text!r}{p}, concepts={self.concepts}, context_tokens={self.context_tokens})"


__all__ = ["Answer", "answer_ids", "p_yes"]
