"""Misalignment (CLIP4DM): which words of a caption do not match the image.

Public names of the method; its internals live in the modules beside this file (scoring, attribution,
inputs, words, result, render, evaluation)."""

from egokit.methods.misalign.evaluation import (
    DEFAULT_MODEL,
    MisalignEvaluation,
    average_precision,
    calibrate,
    evaluate,
    foil_set,
    localisation,
    multi_foil_set,
    quick_evaluate,
    word_prf,
)
from egokit.methods.misalign.inputs import check_caption
from egokit.methods.misalign.render import caption_html
from egokit.methods.misalign.result import MisalignmentResult
from egokit.methods.misalign.scoring import (
    PAPER_EPS,
    PAPER_LAYERS,
    PAPER_TEMPLATE,
    VARIANTS,
    resolve_layers,
    score,
    score_batch,
    score_variants,
)

__all__ = [
    "DEFAULT_MODEL",
    "MisalignEvaluation",
    "MisalignmentResult",
    "PAPER_EPS",
    "PAPER_LAYERS",
    "PAPER_TEMPLATE",
    "VARIANTS",
    "average_precision",
    "calibrate",
    "caption_html",
    "check_caption",
    "evaluate",
    "foil_set",
    "localisation",
    "multi_foil_set",
    "quick_evaluate",
    "resolve_layers",
    "score",
    "score_batch",
    "score_variants",
    "word_prf",
]
