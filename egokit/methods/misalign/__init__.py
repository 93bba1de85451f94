"""Misalignment (CLIP4DM): which words of a caption do not match the image.

Public names of the method; its internals live in the modules beside this file (scoring, attribution,
inputs, words, result, render, evaluation).

Deliberate differences from the official code (naver-ai/CLIP4DM); the signed gradient × attention on the
end-of-text row itself matches its `get_attribution_map` to float rounding. Measured with
`egokit misalign eval --json --seed 0 --n 200` on micro-clip (zoo v2; 2-core CPU, 23 s), which reports the
paper's settings beside the calibrated ones (`paper_settings.*`); in brackets the same run on zoo v1's CLIP
(`--model stages/micro-clip-v1 --no-captum`):

| what | official | egokit | why | measured effect |
|---|---|---|---|---|
| layers L, threshold ε | last 3 text layers, ε = −5e-5 | calibrated per checkpoint on the validation split (micro-clip: all 4 layers, ε = −2.27e-3; `egokit.json` beside the weights); the paper's values stay available (`PAPER_LAYERS`, `PAPER_EPS`) | the paper's values were tuned on CLIP ViT-H/14; the micro CLIP's text encoder has 4 layers | localisation accuracy 0.605 calibrated vs 0.225 with the paper's settings (v1: 0.495 vs 0.215); multi-error word F1 0.631 vs 0.291 (0.542 vs 0.302); AP of F-CLIPScore at ε 0.753 vs 0.621 (0.661 vs 0.556) |
| punctuation | the most negative token may be the final "." | punctuation-only words get a score but are never flagged or picked | a full stop is never the misaligned word | localisation accuracy 0.605 either way on this run (`la_with_punctuation`; v1 0.495 either way) |
| template | "A photo depicts " | the same where the tokenizer can read its words, else none | a closed-vocabulary tokenizer would feed unknown tokens | none on micro-clip (its tokenizer reads the template) |
"""

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
