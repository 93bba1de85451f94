"""The visual debugger: for every word a VLM generates, where in the image does it look? (A tool: it has
no evaluation.)

Public names of the method; its internals live in the modules beside this file."""

from egokit.methods.explore.explorer import (
    VIEWS,
    Exploration,
    exploration_summary,
    explore,
)

__all__ = [
    "VIEWS",
    "Exploration",
    "exploration_summary",
    "explore",
]
