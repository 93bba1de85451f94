"""egokit: look inside vision-language models.

The public API is re-exported here. Heavy modules (torch, transformers) are imported on first use, so
`import egokit` and `egokit --help` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from egokit.errors import (
    CapabilityError,
    CaptureError,
    EgokitError,
    ImageError,
    InputError,
    MemoryFileError,
    ModelLoadError,
)

__version__ = "0.1.0"

# public name -> "module:attribute" (or "module" for a sub-module)
_LAZY = {
    "load": "egokit.models.loading:load",
    "LoadedModel": "egokit.models.loading:LoadedModel",
    "capture": "egokit.capture.engine:capture",
    "from_model": "egokit.models.loading:from_model",
    "build_tiny": "egokit.models.tiny:build_tiny",
    "load_image": "egokit.data.images:load_image",
    "ShapesWorld": "egokit.data.shapesworld:ShapesWorld",
    "ego": "egokit.methods.ego",
    "misalign": "egokit.methods.misalign",
    "lorsu": "egokit.methods.lorsu",
    "pixel": "egokit.methods.pixel",
    "sa2vp": "egokit.methods.sa2vp",
    "explore": "egokit.methods.explore",
}

__all__ = [
    "CaptureError",
    "EgokitError",
    "ImageError",
    "InputError",
    "MemoryFileError",
    "CapabilityError",
    "ModelLoadError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'egokit' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
