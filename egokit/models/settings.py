"""Settings of one checkpoint that are not architecture: a small JSON file beside its weights.

`egokit.json` in a model folder holds, per method, what was calibrated or chosen for that checkpoint
(e.g. CLIP4DM's layers and ε for the micro CLIP, the micro VLM's prompt format for Ego):

    {"misalign": {"layers": 4, "eps": -7.35e-4}}

`egokit.load` reads it into `LoadedModel.settings`; a method reads its own section with
`loaded.settings_for("misalign")` and falls back to its paper defaults for a key that is missing (a hub
checkpoint has no file, so every key is missing). A file that is not a JSON object of objects is a clear
`ModelLoadError`, never silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from egokit.errors import ModelLoadError

SETTINGS_FILE = "egokit.json"


def read_settings(folder: str | Path) -> dict[str, dict[str, Any]]:
    """The settings in `folder/egokit.json` (method → its settings), or {} when there is no such file."""
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read the checkpoint settings {path}: {e}; fix or delete the file") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ModelLoadError(f"{path} must hold a JSON object of objects (method name → its settings), "
                             f"e.g. {{\"misalign\": {{\"layers\": 4}}}}; fix or delete the file")
    return data


__all__ = ["SETTINGS_FILE", "read_settings"]
