"""The versions of transformers the kit is tested with, and the check that refuses others.

CI runs the capture, model, method and fault tests on the lowest version (`TRANSFORMERS_LOWEST`) and the whole
suite on the highest (`TRANSFORMERS_HIGHEST`); `pyproject.toml` declares the same range (a test keeps the
two equal). Outside it, loading or building a model stops with one `VersionError` that names the range,
instead of a traceback deep inside a model (releases rename outputs and arguments the kit relies on).
"""

from __future__ import annotations

from functools import cache

from egokit.errors import VersionError

TRANSFORMERS_LOWEST = "5.17.0"
TRANSFORMERS_HIGHEST = "5.24.0"
#: the requirement as pyproject.toml and pip spell it: lowest tested up to the next untested minor release
TRANSFORMERS_REQUIREMENT = "transformers>=5.17,<5.25"


def check_transformers(installed: str | None = None) -> str:
    """The installed transformers version; `VersionError` when it is outside the tested range.

    installed: a version string to check instead of the installed one (for tests).
    """
    from packaging.version import Version

    if installed is None:
        installed = _installed()
    version = Version(installed)
    lowest, highest = Version(TRANSFORMERS_LOWEST), Version(TRANSFORMERS_HIGHEST)
    if version < lowest or (version.major, version.minor) > (highest.major, highest.minor):
        raise VersionError(
            f"egokit is tested with transformers {TRANSFORMERS_LOWEST} to {highest.major}.{highest.minor}.x, "
            f"and this environment has {installed}. Install a tested release: pip install "
            f"'{TRANSFORMERS_REQUIREMENT}'"
        )
    return installed


@cache
def _installed() -> str:
    from importlib.metadata import version

    return version("transformers")


__all__ = ["TRANSFORMERS_HIGHEST", "TRANSFORMERS_LOWEST", "TRANSFORMERS_REQUIREMENT", "check_transformers"]
