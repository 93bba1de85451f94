"""LoRSU: fix an imperfect CLIP vision encoder with sparse, structured updates (Panos et al., TMLR 2025).

`update(model, session_data)` runs one continual session in place; `evaluate(model)` runs the continual
few-shot protocol on ShapesWorld (LoRSU against full fine-tuning, LoRA, SPU, LayerNorm tuning and two
ablations) and returns a `LorsuEvaluation`; `quick_evaluate(model)` is its quick setting. The model is
any family with the capabilities DUAL_ENCODER and WRAPPABLE_VIT (the micro zoo's is `DEFAULT_MODEL`).

Public names of the method; its internals live in the modules beside this file.
"""

from egokit.methods.lorsu.accuracies import Accuracies, control_accuracy, target_accuracy
from egokit.methods.lorsu.baselines import LORA_PIECES, METHODS, lora_targets
from egokit.methods.lorsu.data import (
    ClassSpec,
    SessionSpec,
    TestSet,
    control_set,
    default_sessions,
    session_data,
    target_examples,
    target_set,
)
from egokit.methods.lorsu.evaluation import (
    ABLATIONS,
    DEFAULT_MODEL,
    MAIN_METHODS,
    Settings,
    ZeroShot,
    evaluate,
    quick_evaluate,
)
from egokit.methods.lorsu.result import LorsuEvaluation
from egokit.methods.lorsu.session import (
    DEFAULTS,
    SessionReport,
    choose_heads,
    head_rows,
    head_scores,
    top_fraction_mask,
    update,
)
from egokit.methods.lorsu.training import SessionData, image_embeddings, vision_parameters

__all__ = [
    "ABLATIONS",
    "Accuracies",
    "ClassSpec",
    "DEFAULTS",
    "DEFAULT_MODEL",
    "LORA_PIECES",
    "LorsuEvaluation",
    "MAIN_METHODS",
    "METHODS",
    "SessionData",
    "SessionReport",
    "SessionSpec",
    "Settings",
    "TestSet",
    "ZeroShot",
    "choose_heads",
    "control_accuracy",
    "control_set",
    "default_sessions",
    "evaluate",
    "head_rows",
    "head_scores",
    "image_embeddings",
    "lora_targets",
    "quick_evaluate",
    "session_data",
    "target_accuracy",
    "target_examples",
    "target_set",
    "top_fraction_mask",
    "update",
    "vision_parameters",
]
