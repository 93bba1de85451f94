"""The capture engine: targeted attention (and gradient) capture on the fast attention path, its memory
estimate, and every other hook the kit places (`hooks.Hooks`)."""

from egokit.capture.engine import capture
from egokit.capture.hooks import Hooks
from egokit.capture.memory import estimate_attention_memory

__all__ = ["Hooks", "capture", "estimate_attention_memory"]
