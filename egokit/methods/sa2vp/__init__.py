"""SA²VP: a spatially aligned-and-adapted visual prompt on a frozen ViT (Pei et al., AAAI 2024).

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.sa2vp.model import (
    SA2VP,
    Adapter,
    SA2VPOutput,
    cross_attend,
    evaluate,
    prompt_change_maps,
    sa2vp_param_count,
)

__all__ = [
    "Adapter",
    "SA2VP",
    "SA2VPOutput",
    "cross_attend",
    "evaluate",
    "prompt_change_maps",
    "sa2vp_param_count",
]
