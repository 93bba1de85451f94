"""Faults: text from people, models and files is escaped in every widget's HTML and in the tour report;
image paths that are not regular files, or are too large, are refused before they are read."""

from __future__ import annotations

import io
import os
import threading
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from egokit.widgets import AttentionExplorer, KeywordPicker, MisalignmentViewer, WordLocator
from PIL import Image

import egokit.methods.ego as ego
import egokit.methods.misalign as misalign
import egokit.methods.pixel as pixel
from egokit.data.images import load_image
from egokit.errors import ImageError, InputError
from egokit.tour.report import Headline, Section, TourContext, render_html

EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"


def assert_escaped(markup: str) -> None:
    assert ESCAPED in markup
    assert "<script" not in markup and "<img" not in markup


# ------------------------------------------------------------------------------------------- widgets


def test_word_locator_escapes_model_errors():
    with mock.patch.object(pixel, "localize", side_effect=InputError(EVIL)):
        v = WordLocator(object(), object(), object())
    assert_escaped(v.status.value)


def test_misalignment_viewer_escapes_model_errors():
    with mock.patch.object(misalign, "score", side_effect=InputError(EVIL)):
        v = MisalignmentViewer(object(), object(), "a caption")
    assert_escaped(v.status.value)


def test_keyword_picker_escapes_errors_and_the_description():
    with mock.patch.object(ego, "look_at", side_effect=InputError(EVIL)):
        v = KeywordPicker(object(), object())
    assert_escaped(v.status.value)
    look = SimpleNamespace(description=EVIL, words=[SimpleNamespace(text="<b>")], keyword=[True], layers=[0])
    with mock.patch.object(KeywordPicker, "_render"):
        v = KeywordPicker(look=look)
    assert_escaped(v.status.value)


def test_attention_explorer_escapes_the_answer_and_notes():
    result = SimpleNamespace(
        look=SimpleNamespace(attentions=torch.zeros(1, 1, 1, 1)), rollout_rows=None, tokens=["x"],
        default_token=lambda: 0, answer=EVIL, notes=[EVIL],
        memory=SimpleNamespace(targeted_bytes=1024, full_bytes=2**20, ratio=1024.0),
        overlay=lambda *args: Image.new("RGB", (8, 8)),
    )
    with mock.patch("egokit.widgets.explorer.explore", return_value=result):
        v = AttentionExplorer(object(), object(), "prompt")
    assert v.info.value.count(ESCAPED) == 2 and "<script" not in v.info.value


# ------------------------------------------------------------------------------------------- tour report


def test_tour_report_escapes_every_text_of_a_section(tmp_path):
    picture = Image.new("RGB", (4, 4))
    sections = [
        Section(key="evil", title=EVIL, summary=EVIL, images=[(EVIL, picture)],
                metrics={EVIL: EVIL, "nested": {EVIL: 1.5}}, commands=[EVIL],
                headline=Headline(method=EVIL, metric=EVIL, value=1.0, baseline=EVIL, baseline_value=0.5,
                                  paper=EVIL, rule=EVIL, shows=True)),
        Section(key=EVIL, title="failed", summary="", error=EVIL),
    ]
    page = render_html(sections, TourContext(out_dir=tmp_path, requested_device=EVIL, seed=0))
    assert "<script" not in page and "<img src=x" not in page
    # title ×2 (contents + heading), summary, caption ×2 (alt + figcaption), metric names and values ×2
    # (summary table + section table), command, error, key, device; in the headline table the method, metric,
    # baseline, paper and rule, and the failed section's key
    assert page.count("&lt;script&gt;") == 22


# ------------------------------------------------------------------------------------------- images


def _load_in_thread(path: Path) -> BaseException | None:
    """load_image(path) in a daemon thread; fails the test (instead of hanging it) when it blocks."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            load_image(path)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            outcome.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert outcome, f"load_image({path}) blocked"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    error = _load_in_thread(fifo)
    assert isinstance(error, ImageError) and "FIFO" in str(error) and "regular file" in str(error)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
def test_device_is_refused_before_reading():
    error = _load_in_thread(Path("/dev/zero"))
    assert isinstance(error, ImageError) and "is a device" in str(error)


def test_huge_file_is_refused_by_its_size_before_reading(tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.truncate(1_500_000_000)  # sparse: no disk space, no time
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=r"1,500,000,000 bytes, more than the limit of 1,073,741,824"):
            load_image(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_non_image_under_the_limit_is_identified_from_its_header(tmp_path):
    junk = tmp_path / "junk.png"
    with open(junk, "wb") as fh:
        fh.write(b"\x01\x02\x03\x04")
        fh.truncate(200_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="not an image format"):
            load_image(junk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_max_bytes_limit_for_paths_and_file_objects(tmp_path):
    data = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(data, format="BMP")
    p = tmp_path / "a.bmp"
    p.write_bytes(data.getvalue())
    size = p.stat().st_size
    assert load_image(p, max_bytes=size).size == (64, 64)
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(p, max_bytes=size - 1)
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(io.BytesIO(data.getvalue()), max_bytes=size - 1)
    with pytest.raises(ImageError, match="max_bytes must be a positive integer"):
        load_image(p, max_bytes=0)


def test_endless_file_object_is_read_only_up_to_the_limit():
    asked: list[int] = []

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            asked.append(n)
            if n is None or n < 0:
                raise MemoryError("endless")
            return b"\0" * n

    with pytest.raises(ImageError, match="more than the limit of 1,000 bytes"):
        load_image(Endless(), max_bytes=1000)
    assert asked == [1001]
