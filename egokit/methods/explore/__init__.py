"""The visual debugger: for every word a VLM generates, where in the image does it look?

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.explore.explorer import (
    Exploration,
    exploration_summary,
    explore,
)

__all__ = [
    "Exploration",
    "exploration_summary",
    "explore",
]
