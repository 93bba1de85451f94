"""Small helpers behind `egokit misalign score`: the text summary and the PNG it writes."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from egokit.errors import InputError
from egokit.methods.misalign_result import MisalignmentResult


def summary_lines(result: MisalignmentResult, out: str | None = None) -> list[str]:
    """A few human-readable lines: each word with its score (flagged ones marked), then the scores."""
    flagged = set(result.flagged)
    width = max((len(w) for w in result.words), default=4)
    lines = [f"caption: {result.caption}"]
    for i, (w, s) in enumerate(zip(result.words, result.scores.tolist())):
        mark = "  <- misaligned" if i in flagged else ""
        if i == result.most_negative:
            mark += "  (most negative)"
        lines.append(f"  {w:<{width}}  {s:+.3e}{mark}")
    phrases = ", ".join(repr(p["text"]) for p in result.phrases) or "none"
    lines.append(f"flagged at eps={result.eps:.3g}: {phrases}")
    lines.append(f"similarity={result.similarity:.4f}  CLIPScore={result.clipscore:.4f}  "
                 f"F-CLIPScore={result.fclipscore:.4g}")
    if result.dropped_words:
        lines.append(f"dropped (too long): {' '.join(result.dropped_words)}")
    if out:
        lines.append(f"picture written to {out}")
    return lines


def write_picture(result: MisalignmentResult, path: Path, word: str | None = None) -> Path:
    """Write `result.to_image(word)` as PNG (atomically). `word` is a word of the caption or its index."""
    choice: int | str | None = word
    if word is not None and word.lstrip("-").isdigit() and word not in result.words:
        choice = int(word)
    if path.suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file, got {path}")
    if not path.parent.exists():
        raise InputError(f"the folder {path.parent} does not exist; create it or choose another --out")
    picture = result.to_image(choice)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        picture.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


__all__ = ["summary_lines", "write_picture"]
