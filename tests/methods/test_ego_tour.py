"""The Ego section of `egokit tour`, on a micro-VLM-shaped model saved to a folder (plumbing only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_ego_support import quick_micro_vlm, single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def test_ego_section_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    import egokit.commands.ego_tour as ego_tour
    from egokit.commands import discover
    from egokit.tour.report import SECTIONS, TourContext

    assert not discover() and "ego" in [s.key for s in SECTIONS]
    lm = quick_micro_vlm()
    folder = tmp_path / "model"
    lm.model.save_pretrained(folder)
    lm.processor.save_pretrained(folder)
    monkeypatch.setattr(ego_tour, "MODEL", str(folder))
    monkeypatch.setattr(ego_tour, "TOUR_CONCEPTS", 2)
    section = ego_tour.ego_section(TourContext(out_dir=tmp_path, requested_device="cpu", seed=0))
    assert section.key == "ego" and section.error is None
    assert len(section.images) == 2 and all(isinstance(im, Image.Image) for _, im in section.images)
    for key in ("f1_ego", "f1_all_tokens", "selection_precision_ego", "add_concept_s", "memory_tokens_ego"):
        assert key in section.metrics
    assert any("egokit ego eval" in c for c in section.commands)
