"""LoRSU: fix an imperfect CLIP vision encoder with sparse, structured updates (one continual session).

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.lorsu.session import (
    DEFAULTS,
    SessionData,
    SessionReport,
    choose_heads,
    head_rows,
    head_scores,
    top_fraction_mask,
    update,
)

__all__ = [
    "DEFAULTS",
    "SessionData",
    "SessionReport",
    "choose_heads",
    "head_rows",
    "head_scores",
    "top_fraction_mask",
    "update",
]
