"""The tested transformers range: declared once, checked at load, tested at both ends by CI, and the kit's own
calls raise no deprecation warning from transformers (pyproject's filterwarnings turns them into errors)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import tomllib
import torch

from egokit import cli, versions
from egokit.errors import VersionError
from egokit.models.generation import greedy_from_embeds
from egokit.models.tiny import build_tiny

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_declares_the_tested_range():
    deps = PYPROJECT["project"]["dependencies"]
    assert versions.TRANSFORMERS_REQUIREMENT in deps
    low, high = re.fullmatch(r"transformers>=([\d.]+),<([\d.]+)", versions.TRANSFORMERS_REQUIREMENT).groups()
    assert versions.TRANSFORMERS_LOWEST.startswith(low)
    major, minor = (int(x) for x in versions.TRANSFORMERS_HIGHEST.split(".")[:2])
    assert high == f"{major}.{minor + 1}"


def test_ci_tests_the_lowest_version():
    script = (ROOT / ".ci" / "run").read_text()
    assert "TRANSFORMERS_LOWEST" in script and "egokit/versions.py" in script


@pytest.mark.parametrize("installed", ["5.17.0", "5.20.1", "5.24.0", "5.24.9"])
def test_versions_in_the_range_pass(installed):
    assert versions.check_transformers(installed) == installed


@pytest.mark.parametrize("installed", ["4.57.6", "5.16.1", "5.25.0", "6.0.0"])
def test_versions_outside_the_range_are_one_clear_error(installed):
    with pytest.raises(VersionError) as info:
        versions.check_transformers(installed)
    message = str(info.value)
    assert installed in message and versions.TRANSFORMERS_REQUIREMENT in message and "\n" not in message


def test_the_installed_version_is_in_the_range():
    versions.check_transformers()


def test_a_model_load_on_an_untested_version_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(versions, "_installed", lambda: "6.1.0")
    image = tmp_path / "red.png"
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(image)
    assert cli.main(["explore", str(image), "what is this?"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("egokit: error: egokit is tested with transformers"), err
    assert "6.1.0" in err[-1] and "Traceback" not in "\n".join(err)


def test_filterwarnings_turns_transformers_deprecations_into_errors():
    filters = PYPROJECT["tool"]["pytest"]["ini_options"]["filterwarnings"]
    assert "error::FutureWarning:transformers" in filters
    assert "error::DeprecationWarning:transformers" in filters
    # The filter is live in this run: a FutureWarning raised from a transformers module is an error.
    with pytest.raises(FutureWarning):
        warnings.warn_explicit("deprecated", FutureWarning, "generic.py", 1, module="transformers.utils.generic")


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "idefics3", "paligemma"])
def test_generation_passes_no_deprecated_argument(family):
    model, _ = build_tiny(family)
    embeds = model.get_input_embeddings()(torch.tensor([[1, 2, 3, 4]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        greedy_from_embeds(model, embeds, max_new_tokens=3, stop=set())
    assert [str(w.message) for w in caught if "transformers" in w.filename] == []
