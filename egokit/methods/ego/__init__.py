"""Ego: training-free personalization of a VLM from attention-selected visual tokens.

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.ego.answer import Answer
from egokit.methods.ego.evaluation import (
    DEFAULT_MODEL,
    EgoEvaluation,
    check_targets,
    evaluate,
    held_out_concepts,
    quick_evaluate,
)
from egokit.methods.ego.formats import CHAT, FORMATS, MICRO, PromptFormat, format_for, register_format
from egokit.methods.ego.look import ReferenceLook, look_at_reference
from egokit.methods.ego.memory import ConceptMemory, MemoryBank, MemoryView
from egokit.methods.ego.personalize import (
    DEFAULT_BUDGET,
    LayerCalibration,
    ask,
    calibrate_layers,
    calibrated_layers,
    choose_concepts,
    describe,
    encode_image,
    generate_text,
    look_at,
    remember,
    selection_precision,
    similarity,
    subject_mask,
)
from egokit.methods.ego.render import (
    COMPARE_METRICS,
    compare_picture,
    compare_rows,
    memories_picture,
    selection_picture,
)
from egokit.methods.ego.select import SELECTIONS, budget_k, top_k_raster

__all__ = [
    "Answer",
    "CHAT",
    "COMPARE_METRICS",
    "ConceptMemory",
    "DEFAULT_BUDGET",
    "DEFAULT_MODEL",
    "EgoEvaluation",
    "FORMATS",
    "LayerCalibration",
    "MICRO",
    "MemoryBank",
    "MemoryView",
    "PromptFormat",
    "ReferenceLook",
    "SELECTIONS",
    "ask",
    "budget_k",
    "calibrate_layers",
    "calibrated_layers",
    "check_targets",
    "choose_concepts",
    "compare_picture",
    "compare_rows",
    "describe",
    "encode_image",
    "evaluate",
    "format_for",
    "generate_text",
    "held_out_concepts",
    "look_at",
    "look_at_reference",
    "memories_picture",
    "quick_evaluate",
    "register_format",
    "remember",
    "selection_picture",
    "selection_precision",
    "similarity",
    "subject_mask",
    "top_k_raster",
]
