"""The method contract, checked the same way on every method package (egokit/methods/<name>/ exporting
`evaluate`): its quick evaluation on the shipped micro model it names, flat metrics, a save → load round
trip, and a picture that is not blank.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import egokit.methods
from egokit.results import Evaluation

METHODS = sorted(
    m.name for m in pkgutil.iter_modules(egokit.methods.__path__)
    if m.ispkg and hasattr(importlib.import_module(f"egokit.methods.{m.name}"), "evaluate")
)


def test_the_five_methods_are_registered():
    assert set(METHODS) >= {"ego", "misalign", "lorsu", "pixel", "sa2vp"}


@pytest.fixture(scope="module", params=METHODS)
def evaluation(request):
    from egokit import load

    method = importlib.import_module(f"egokit.methods.{request.param}")
    for name in ("DEFAULT_MODEL", "evaluate", "quick_evaluate"):
        assert name in method.__all__, f"egokit.methods.{request.param} does not export {name}"
    result = method.quick_evaluate(load(method.DEFAULT_MODEL, device="cpu"))
    return request.param, result


def test_quick_evaluation_gives_flat_metrics(evaluation):
    name, result = evaluation
    assert isinstance(result, Evaluation), f"{name}.evaluate must return an egokit.results.Evaluation"
    metrics = result.metrics()
    assert metrics and all(isinstance(k, str) for k in metrics)
    for key, value in metrics.items():
        assert value is None or isinstance(value, (bool, int, float, str)), f"{name}: {key} is {type(value).__name__}"
        if isinstance(value, float):
            assert not math.isinf(value), f"{name}: {key} is infinite"


def test_evaluation_round_trips_through_a_file(evaluation, tmp_path: Path):
    name, result = evaluation
    path = result.save(tmp_path / f"{name}.safetensors")
    again = type(result).load(path)
    assert again.metrics().keys() == result.metrics().keys()
    for key, value in result.metrics().items():
        other = again.metrics()[key]
        if isinstance(value, float) and math.isnan(value):
            assert isinstance(other, float) and math.isnan(other), key
        else:
            assert other == value, key


def test_evaluation_shows_a_picture(evaluation):
    from io import BytesIO

    from PIL import Image

    name, result = evaluation
    png = result._repr_png_()
    picture = np.asarray(Image.open(BytesIO(png)).convert("L"))
    assert picture.size > 1000 and picture.std() > 1.0, f"{name}'s picture is blank"
