"""The commands of `egokit`: one module per method (its sub-commands and its tour section) plus the kit's
own (`tour`, `data`, `bench`, `zoo`). Each module registers itself on import (`registry.command`,
`egokit.tour.register_section`); `discover()` imports them all, so adding a method's commands is adding
one module here.
"""

from __future__ import annotations

import importlib
import pkgutil

_INFRASTRUCTURE = {"registry", "options"}


def discover() -> dict[str, Exception]:
    """Import every command module of this package (registering its commands and tour section).

    A module that fails to import does not stop the others: returns {module name: error} of those that
    failed (empty when all imported), so the CLI still runs and the tour shows the failure.
    """
    failed: dict[str, Exception] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _INFRASTRUCTURE:
            continue
        name = f"{__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - one broken command module must not hide the others
            failed[name] = e
    return failed


__all__ = ["discover"]
