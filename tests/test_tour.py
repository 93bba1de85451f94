"""Tests for egokit.tour.report: the report is written, self-contained, and survives a failing section."""

from __future__ import annotations

import json
import re
import time

import pytest
from PIL import Image

from egokit import cli
from egokit.errors import EgokitError, InputError
from egokit.tour.report import SECTIONS, Headline, Section, register_section, run_tour


@pytest.fixture(autouse=True)
def only_builtin_sections(monkeypatch):
    """These tests check the report machinery on the built-in ShapesWorld section alone: the methods'
    sections are exercised by the full tour that the README's main command runs (tests/test_readme.py)."""
    from egokit.commands import discover

    discover()  # the command line imports every section module; do it first so none registers mid-test
    saved = list(SECTIONS)
    SECTIONS[:] = [s for s in SECTIONS if s.key == "shapesworld"]
    yield
    SECTIONS[:] = saved


@pytest.fixture
def sections_snapshot():
    """Restore the section registry after a test that registers extra sections."""
    saved = list(SECTIONS)
    yield
    SECTIONS[:] = saved


def test_run_tour_writes_a_self_contained_report(tmp_path):
    start = time.perf_counter()
    index = run_tour(tmp_path / "report", seed=0)
    assert time.perf_counter() - start < 20
    assert index == tmp_path / "report" / "index.html"
    page = index.read_text(encoding="utf-8")
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["ok"] is True and metrics["seed"] == 0
    for builder in SECTIONS:
        assert builder.title in page
        assert metrics["sections"][builder.key]["status"] == "ok"
    assert page.count("data:image/png;base64,") >= len(SECTIONS)
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    assert not re.search(r'src="(?!data:)', page)  # every image is inline
    assert "egokit tour --seed 0" in page  # the commands that reproduce the numbers
    assert not list((tmp_path / "report").glob("*.tmp"))  # atomic writes leave no temp files


def test_shapesworld_section_metrics(tmp_path):
    run_tour(tmp_path)
    section = json.loads((tmp_path / "metrics.json").read_text())["sections"]["shapesworld"]
    m = section["metrics"]
    assert m["image_size"] == 64 and m["visual_grid"] == "8x8"
    assert m["objects_per_scene_mean"] >= 1 and m["caption_words_mean"] > 3
    assert section["commands"]


def test_failing_section_is_shown_and_reported(tmp_path, sections_snapshot):
    @register_section("broken", "A section that breaks", order=50)
    def broken(ctx):
        raise RuntimeError("the model exploded <b>here</b>")

    @register_section("tiny", "A tiny section", order=60)
    def tiny(ctx):
        return Section(key="tiny", title="A tiny section", summary="One. Two.",
                       images=[("a red square", Image.new("RGB", (8, 8), "red"))],
                       metrics={"accuracy": 0.5, "nested": {"n": 3}}, commands=["egokit tiny --seed 0"])

    with pytest.raises(EgokitError, match=r"sections failed: broken \(RuntimeError: the model exploded"):
        run_tour(tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert 'class="error"' in page and "the model exploded &lt;b&gt;here&lt;/b&gt;" in page
    assert "A section that breaks" in page and "A tiny section" in page and "nested.n" in page
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ok"] is False
    assert metrics["sections"]["broken"]["status"] == "failed"
    assert metrics["sections"]["tiny"] == {
        "title": "A tiny section", "status": "ok", "metrics": {"accuracy": 0.5, "nested": {"n": 3}},
        "commands": ["egokit tiny --seed 0"], "error": None,
    }
    order = [page.index(f'<section id="{key}">') for key in ("shapesworld", "broken", "tiny")]
    assert order == sorted(order)


def test_bad_section_output_is_a_failure(tmp_path, sections_snapshot):
    register_section("not-a-section", "Returns the wrong thing")(lambda ctx: {"oops": 1})
    register_section("bad-metric", "Unserialisable metric")(
        lambda ctx: Section(key="bad-metric", title="Unserialisable metric", summary="", metrics={"x": object()}))
    with pytest.raises(EgokitError) as e:
        run_tour(tmp_path)
    assert "not-a-section" in str(e.value) and "bad-metric" in str(e.value)
    assert json.loads((tmp_path / "metrics.json").read_text())["sections"]["shapesworld"]["status"] == "ok"


def test_broken_section_module_does_not_stop_the_tour(tmp_path):
    errors = {"egokit.no_such_module_for_the_tour": ModuleNotFoundError("no module named it")}
    with pytest.raises(EgokitError, match="no_such_module_for_the_tour"):
        run_tour(tmp_path, import_errors=errors)
    assert "could not import egokit.no_such_module_for_the_tour" in (tmp_path / "index.html").read_text()


def test_register_section_replaces_same_key(sections_snapshot):
    before = len(SECTIONS)
    register_section("dup", "first")(lambda ctx: None)
    register_section("dup", "second")(lambda ctx: None)
    assert len(SECTIONS) == before + 1 and SECTIONS[-1].title == "second"


def test_bad_device_and_out_path(tmp_path):
    with pytest.raises(InputError, match="unknown device"):
        run_tour(tmp_path, device="tpu")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        run_tour(blocker)


def test_cli_tour(tmp_path, capsys):
    out = tmp_path / "cli-report"
    assert cli.main(["tour", "--out", str(out)]) == 0
    assert (out / "index.html").is_file()
    json.loads((out / "metrics.json").read_text())
    assert "report written to" in capsys.readouterr().out


def test_cli_tour_failure_exits_nonzero(tmp_path, capsys, sections_snapshot):
    register_section("broken", "Broken")(lambda ctx: 1 / 0)
    assert cli.main(["tour", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # the lines before it are the progress bar
    assert last.startswith("egokit: error: ") and "broken (ZeroDivisionError" in last
    assert (tmp_path / "index.html").is_file()


def test_metrics_json_is_strict(tmp_path, sections_snapshot):
    np = pytest.importorskip("numpy")

    @register_section("numbers", "Numbers", order=70)
    def numbers(ctx):
        return Section(key="numbers", title="Numbers", summary="", metrics={
            "nan": float("nan"), "np_float": np.float32(0.25), "np_int": np.int64(3), "vector": np.arange(3)})

    run_tour(tmp_path)
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["sections"]["numbers"]["metrics"] == {
        "nan": None, "np_float": 0.25, "np_int": 3, "vector": [0, 1, 2]}


def test_section_key_must_match_registration(tmp_path, sections_snapshot):
    register_section("right", "Right")(lambda ctx: Section(key="wrong", title="Right", summary=""))
    with pytest.raises(EgokitError, match="registered as 'right' returned a section with key 'wrong'"):
        run_tour(tmp_path)


def test_unavailable_gpu_fails_before_any_work(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="no CUDA GPU"):
        run_tour(tmp_path / "r", device="cuda")
    assert not (tmp_path / "r" / "index.html").exists()


def test_sections_share_one_loaded_model(tmp_path):
    from egokit.tour.report import TourContext

    ctx = TourContext(out_dir=tmp_path, requested_device="cpu", seed=0)
    first = ctx.model("micro-clip")
    assert ctx.model("micro-clip") is first and first.family == "clip"
    assert list(ctx.cache) == ["model:micro-clip"]


def test_the_headline_table_is_the_first_screen(tmp_path, sections_snapshot):
    for key, value, shows in (("alpha", 0.9, True), ("beta", 0.2, False)):
        def build(ctx, key=key, value=value, shows=shows):
            return Section(key=key, title=key.title(), summary="", metrics={"score": value, "base": 0.5},
                           headline=Headline(method=key.title(), metric="score", value=value, baseline="base",
                                             baseline_value=0.5, paper="0.99 on its benchmark",
                                             rule="above base", shows=shows))
        register_section(key, key.title(), order=60)(build)
    run_tour(tmp_path)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    first = page.index('id="headline"')
    assert first < page.index("<nav") and first < page.index("<section") < page.index('id="metrics"')
    table = page[first:page.index("</table>", first)]
    assert "Alpha" in table and "Beta" in table and "0.99 on its benchmark" in table
    assert table.count("✓") == 1 and table.count("✗") == 1
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert [(row["method"], row["shows"]) for row in document["headline"]] == [("Alpha", True), ("Beta", False)]


def test_every_method_section_gives_a_headline():
    """Each method's builder passes `headline=` (read from its source: the builders themselves are slow; the
    README's full tour checks the rows they produce)."""
    import importlib
    import inspect

    for key in ("ego", "misalign", "lorsu", "pixel", "sa2vp"):
        assert "headline=Headline(" in inspect.getsource(importlib.import_module(f"egokit.commands.{key}")) or \
            "headline=_headline(" in inspect.getsource(importlib.import_module(f"egokit.commands.{key}")), key
