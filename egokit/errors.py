"""Errors the kit raises. Every message says what went wrong and what to do about it."""

from __future__ import annotations


class EgokitError(Exception):
    """Base class of every error the kit raises on purpose."""


class ImageError(EgokitError):
    """An image could not be read, or is not usable (empty, too large, not an image)."""


class InputError(EgokitError):
    """A text, argument or option is not usable (empty caption, unknown keyword, bad budget, ...)."""


class ModelLoadError(EgokitError):
    """A model could not be loaded (unknown id, offline without a cache, unsupported family)."""


class CaptureError(EgokitError):
    """Attention or gradients could not be captured (backend returns none, bad layer index, ...)."""


class MemoryFileError(EgokitError):
    """A saved memory or result file is corrupted, truncated, tampered with, or made for another model."""


class CapabilityError(EgokitError):
    """A method was asked to run on a model family that lacks what it needs (e.g. text generation)."""


class VersionError(EgokitError):
    """An installed library is outside the range of versions the kit is tested with."""


class DeviceError(InputError, ModelLoadError):
    """A device that is unknown, or not available on this machine (e.g. `cuda` without a CUDA GPU).

    Both an `InputError` (a bad option) and a `ModelLoadError` (what `egokit.load` raises)."""
