"""SA²VP: a spatially aligned-and-adapted visual prompt on a frozen ViT (Pei et al., AAAI 2024), with the
VPT baselines and the linear probe it is compared against.

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.sa2vp.attention import neighbourhood_mask
from egokit.methods.sa2vp.evaluation import (
    ABLATIONS,
    DEFAULT_MODEL,
    METHODS,
    SHORT_METHODS,
    SHORT_TASK,
    EvalSettings,
    build_method,
    evaluate,
    quick_evaluate,
    short_comparison,
    short_settings,
    vpt_length_for,
)
from egokit.methods.sa2vp.model import (
    SA2VP,
    Adapter,
    SA2VPOutput,
    cross_attend,
    prompt_change_maps,
    sa2vp_param_count,
    tower_of,
)
from egokit.methods.sa2vp.result import MethodScore, PromptChangeMaps, SA2VPEvalResult
from egokit.methods.sa2vp.tasks import TASKS
from egokit.methods.sa2vp.vpt import VPT, LinearProbe

__all__ = [
    "ABLATIONS",
    "Adapter",
    "DEFAULT_MODEL",
    "EvalSettings",
    "LinearProbe",
    "METHODS",
    "MethodScore",
    "PromptChangeMaps",
    "SA2VP",
    "SA2VPEvalResult",
    "SA2VPOutput",
    "SHORT_METHODS",
    "SHORT_TASK",
    "TASKS",
    "VPT",
    "build_method",
    "cross_attend",
    "evaluate",
    "neighbourhood_mask",
    "prompt_change_maps",
    "quick_evaluate",
    "sa2vp_param_count",
    "short_comparison",
    "short_settings",
    "tower_of",
    "vpt_length_for",
]
