"""Misalignment (CLIP4DM): which words of a caption do not match the image.

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.misalign.inputs import check_caption
from egokit.methods.misalign.scoring import (
    CALIBRATED,
    PAPER_EPS,
    PAPER_LAYERS,
    PAPER_TEMPLATE,
    VARIANTS,
    MisalignmentResult,
    resolve_layers,
    score,
    score_batch,
    score_variants,
)

__all__ = [
    "check_caption",
    "CALIBRATED",
    "MisalignmentResult",
    "PAPER_EPS",
    "PAPER_LAYERS",
    "PAPER_TEMPLATE",
    "VARIANTS",
    "resolve_layers",
    "score",
    "score_batch",
    "score_variants",
]
