"""One device resolver and one device error: `egokit.models.loading.resolve_device` decides for `egokit.load`,
every command, the tour and the recipes, and `DeviceError` lives with the kit's other errors.

Before, the recipes had a second resolver (`egokit.training.pick_device`) that passed any name to
`torch.device`: `--device cuda:7` or a typo failed later with a raw torch error, or not at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import egokit.training
from egokit import errors
from egokit.errors import DeviceError, InputError, ModelLoadError
from egokit.models import loading

ROOT = Path(__file__).resolve().parents[2]


def test_device_error_lives_with_the_other_errors():
    assert loading.DeviceError is errors.DeviceError  # still importable where it was
    assert issubclass(DeviceError, InputError) and issubclass(DeviceError, ModelLoadError)
    assert DeviceError.__module__ == "egokit.errors"
    with pytest.raises(errors.DeviceError, match="unknown device 'nonsense'"):
        loading.resolve_device("nonsense")


def test_the_training_runtime_has_no_resolver_of_its_own():
    assert not hasattr(egokit.training, "pick_device")


_RESOLVER = re.compile(r"def pick_device|is_available\(\) else|pick_device\(")


def _sources() -> list[Path]:
    found = [p for folder in ("egokit", "widgets", "benchmarks", "notebooks") for p in (ROOT / folder).rglob("*")
             if p.suffix in (".py", ".ipynb") and "__pycache__" not in p.parts]
    return [p for p in found if p.name != "test_devices.py"]


def test_no_second_device_resolver_anywhere():
    """Package, widgets, benchmarks and notebooks (their code cells): only `resolve_device` picks a device."""
    offenders = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            text = "\n".join("".join(c.get("source", [])) for c in json.loads(text)["cells"] if c["cell_type"] == "code")
        if _RESOLVER.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == ["egokit/models/loading.py"]


@pytest.mark.parametrize("device", ["nonsense", "cuda:99"])
@pytest.mark.parametrize("kind", ["clip", "vlm", "pixel"])
def test_recipes_refuse_a_device_that_is_not_there_before_any_work(kind, device, tmp_path):
    """Called directly (not through `python -m egokit.recipes.train`, which checks first), each recipe still
    answers with the kit's `DeviceError` and writes nothing."""
    out, run_dir = tmp_path / "out", tmp_path / "run"
    if kind == "clip":
        from egokit.recipes.clip import ClipRecipe, train_clip

        call = lambda: train_clip(ClipRecipe.quick(0), out, run_dir, device=device)  # noqa: E731
    elif kind == "vlm":
        from egokit.recipes.vlm import VlmRecipe, train_vlm

        call = lambda: train_vlm(VlmRecipe.quick(0), out, run_dir, device=device, quick=True)  # noqa: E731
    else:
        from egokit.methods.pixel.training import PixelRecipe, train_pixel

        call = lambda: train_pixel(PixelRecipe.quick(0), out, run_dir, device=device)  # noqa: E731
    with pytest.raises(DeviceError):
        call()
    assert not out.exists() and not run_dir.exists()
