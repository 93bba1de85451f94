"""PixelLLM (Xu et al., CVPR 2024): where in the image is each generated word.

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.pixel.locate import (
    CAPTION_PROMPT,
    DEFAULT_HEAD,
    PixelResult,
    PointHead,
    answer_words,
    box_from_points,
    decoder_layers,
    evaluate,
    hidden_size,
    load_head,
    localize,
    refer,
    refer_prompt,
    token_points,
)

__all__ = [
    "CAPTION_PROMPT",
    "DEFAULT_HEAD",
    "PixelResult",
    "PointHead",
    "answer_words",
    "box_from_points",
    "decoder_layers",
    "evaluate",
    "hidden_size",
    "load_head",
    "localize",
    "refer",
    "refer_prompt",
    "token_points",
]
