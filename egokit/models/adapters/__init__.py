"""One file per model family (see `base.py` for the contract): its adapter, what it declares as data, its
tiny test model, and any processor it needs.

`load_adapters()` imports every family module so that `base.ADAPTERS` (model_type → adapter class) is
complete; `adapter_for(model_type)` returns the class or None. A family module that is missing or fails
to import does not stop the others: its error is kept in `IMPORT_ERRORS` (module name → exception) and
shown by the loader when someone asks for that family.
"""

from __future__ import annotations

import importlib
import pkgutil

from egokit.models.adapters.base import ADAPTERS, Adapter, ImageTokens, register_adapter
from egokit.versions import check_transformers

#: modules of this package that hold shared code, not a family
SHARED_MODULES = frozenset({"base", "common", "vlm"})
#: one module per family: every other module of this package (adding a family is adding its file)
FAMILY_MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in SHARED_MODULES))
IMPORT_ERRORS: dict[str, Exception] = {}


def load_adapters() -> dict[str, type[Adapter]]:
    """Import all family modules; return the registry (model_type → adapter class).

    Checks the installed transformers first (`egokit.versions`): outside the tested range, one VersionError.
    """
    check_transformers()
    for name in FAMILY_MODULES:
        module = f"{__name__}.{name}"
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - one broken family must not hide the others
            IMPORT_ERRORS[module] = e
        else:
            IMPORT_ERRORS.pop(module, None)
    return ADAPTERS


def adapter_for(model_type: str) -> type[Adapter] | None:
    """The adapter class registered for `model_type`, or None."""
    return load_adapters().get(model_type)


__all__ = [
    "ADAPTERS",
    "FAMILY_MODULES",
    "IMPORT_ERRORS",
    "Adapter",
    "ImageTokens",
    "adapter_for",
    "load_adapters",
    "register_adapter",
]
