"""PixelLLM (Xu et al., CVPR 2024): where in the image is each generated word.

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.pixel.evaluation import (
    DEFAULT_MODEL,
    PixelEvaluation,
    evaluate,
    inside,
    iou,
    quick_evaluate,
)
from egokit.methods.pixel.head import PointHead, box_from_points, decoder_layers, feature_hooks, hidden_size
from egokit.methods.pixel.locate import (
    DEFAULT_HEAD,
    answer_words,
    load_head,
    localize,
    refer,
    token_points,
)
from egokit.methods.pixel.render import trace_picture
from egokit.methods.pixel.result import PixelResult
from egokit.methods.pixel.targets import (
    CAPTION_PROMPT,
    canonical_objects,
    caption_words,
    refer_prompt,
    referring_expressions,
    trace_targets,
)

__all__ = [
    "CAPTION_PROMPT",
    "DEFAULT_HEAD",
    "DEFAULT_MODEL",
    "PixelEvaluation",
    "PixelResult",
    "PointHead",
    "answer_words",
    "box_from_points",
    "canonical_objects",
    "caption_words",
    "decoder_layers",
    "evaluate",
    "feature_hooks",
    "hidden_size",
    "inside",
    "iou",
    "load_head",
    "localize",
    "quick_evaluate",
    "refer",
    "refer_prompt",
    "referring_expressions",
    "token_points",
    "trace_picture",
    "trace_targets",
]
