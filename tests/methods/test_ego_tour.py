"""The Ego section of `egokit tour`, on a micro-VLM-shaped model saved to a folder (plumbing only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_ego_support import save_quick_micro_vlm, single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def test_ego_section_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    import egokit.commands.ego as ego_commands
    from egokit.commands import discover
    from egokit.tour.report import SECTIONS, TourContext

    failed = discover()
    assert "egokit.commands.ego" not in failed and "ego" in [s.key for s in SECTIONS]
    folder = save_quick_micro_vlm(tmp_path / "model")
    monkeypatch.setattr(ego_commands, "MODEL", str(folder))
    monkeypatch.setattr(ego_commands, "TOUR_CONCEPTS", 2)
    section = ego_commands.ego_section(TourContext(out_dir=tmp_path, requested_device="cpu", seed=0))
    assert section.key == "ego" and section.error is None
    assert len(section.images) == 2 and all(isinstance(im, Image.Image) for _, im in section.images)
    for key in ("f1_ego", "f1_all_tokens", "selection_precision_ego", "add_concept_s", "memory_tokens_ego"):
        assert key in section.metrics
    assert any("egokit ego eval" in c for c in section.commands)
