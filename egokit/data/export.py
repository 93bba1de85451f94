"""Writing ShapesWorld samples to disk: PNG images plus one JSON file of ground truth.

`write_samples(out, seed, n, size)` (the `egokit data sample` command) writes `scene_0000.png`, ...
and `ground_truth.json` into `out`. The same arguments always give byte-identical files: PNGs carry no
metadata (no time stamp) and the JSON is written with sorted keys. Every file is written atomically
(a temporary file in the same folder, then `os.replace`), so a reader never sees half a file.

`ground_truth.json` holds the generator's settings, the vocabulary size, and for each scene its file
name and `Scene.to_dict()` (objects with boxes and row-major RLE masks, caption words with roles and
references, questions with answers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from egokit.data.scenes import Scene
from egokit.data.shapesworld import MAX_SIZE, MIN_SIZE, ShapesWorld
from egokit.errors import InputError
from egokit.files import make_folder, write_bytes_atomic

MAX_SAMPLES = 100_000
GROUND_TRUTH_FILE = "ground_truth.json"
FORMAT_VERSION = 1


def scene_file_name(i: int, n: int) -> str:
    """File name of scene `i` among `n` (zero-padded to at least 4 digits so names sort)."""
    return f"scene_{i:0{max(4, len(str(n - 1)))}d}.png"


def samples_document(entries: list[dict[str, Any]], world: ShapesWorld) -> dict[str, Any]:
    """The JSON document describing a set of written scenes (`entries`: `scene_entry` of each)."""
    from egokit.data.vocab import WORDS

    return {
        "format": "egokit-shapesworld-samples",
        "format_version": FORMAT_VERSION,
        "generator": world.config(),
        "mask_encoding": "rle-row-major: counts of alternating runs over the flattened (H, W) mask, "
                         "starting with a run of False pixels",
        "box_format": "x0, y0, x1, y1 in pixels, x1 and y1 exclusive",
        "vocabulary_size": len(WORDS),
        "n": len(entries),
        "scenes": entries,
    }


def scene_entry(scene: Scene, file: str) -> dict[str, Any]:
    """One scene's record in the JSON document: its file name and its ground truth."""
    return {"file": file, **scene.to_dict()}


def dump_document(doc: dict[str, Any]) -> str:
    """JSON text of a samples document: the header indented, one line per scene, keys sorted."""
    head = {k: v for k, v in doc.items() if k != "scenes"}
    head_text = json.dumps(head, indent=1, sort_keys=True, ensure_ascii=True)
    scenes = ",\n".join("  " + json.dumps(e, sort_keys=True, ensure_ascii=True) for e in doc["scenes"])
    return f'{head_text[:-2]},\n "scenes": [\n{scenes}\n ]\n}}\n'


def write_samples(out: Path, seed: int, n: int, size: int = 64) -> Path:
    """Write `n` ShapesWorld scenes of the train split (seed `seed`, `size`×`size` px, patch 8) as PNG
    files plus `ground_truth.json` into the folder `out` (created if needed). Returns `out`.

    Raises `InputError` for n < 1 or too large, a bad size, a negative seed, or an `out` that is a file."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise InputError(f"--n must be an integer between 1 and {MAX_SAMPLES}, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE or size % 8:
        raise InputError(f"--size must be a multiple of 8 between {MIN_SIZE} and {MAX_SIZE} pixels, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {seed!r}")
    out = make_folder(out, "the output folder")
    world = ShapesWorld(seed=seed, size=size, patch=8, split="train")
    from tqdm.auto import tqdm

    entries = []
    scenes = tqdm(world.scenes(n), total=n, desc="ShapesWorld samples", unit="scene", disable=n < 1000)
    for i, scene in enumerate(scenes):
        name = scene_file_name(i, n)
        write_bytes_atomic(out / name, scene.png_bytes())
        entries.append(scene_entry(scene, name))
    text = dump_document(samples_document(entries, world))
    write_bytes_atomic(out / GROUND_TRUTH_FILE, text.encode("utf-8"))
    return out
