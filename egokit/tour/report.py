"""The tour: one self-contained HTML report (pictures inline, metrics table, reproduce commands).

The report is a list of sections. Each section comes from a *builder*, a function ``(ctx) -> Section``,
registered with `register_section`:

    @register_section("ego", "Ego: personal concepts as a few visual tokens", order=10)
    def ego_section(ctx: TourContext) -> Section:
        ...
        return Section(key="ego", title=..., summary=..., images=[...], metrics={...}, commands=[...])

Each method's builder lives with its commands (`egokit.commands.<method>`); `egokit tour` imports them
(`egokit.commands.discover`) before it runs, so this module knows no method.
A builder that fails does not stop the tour: its section shows the error, the page and metrics.json
are still written, and `run_tour` then raises `EgokitError` naming the failed sections.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from egokit.errors import EgokitError, InputError
from egokit.files import atomic_path, make_folder


@dataclass
class Headline:
    """A method's row in the report's first table: its key metric here against its baseline here, the
    paper's own figure on the paper's benchmark, and whether the effect shows here (decided by `rule`,
    computed by the section from the numbers it measured)."""

    method: str
    metric: str
    value: float
    baseline: str
    baseline_value: float
    paper: str
    rule: str
    shows: bool

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "metric": self.metric, "value": self.value, "baseline": self.baseline,
                "baseline_value": self.baseline_value, "paper": self.paper, "rule": self.rule,
                "shows": bool(self.shows)}


@dataclass
class Section:
    """One part of the report: a title, a two-sentence summary, pictures, numbers and the commands
    that reproduce the numbers; a method's section also gives its `headline`."""

    key: str
    title: str
    summary: str
    images: list[tuple[str, Image.Image]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    headline: Headline | None = None


@dataclass
class TourContext:
    """What every section builder gets: where the report goes, the device, the seed, and a cache that
    sections share (e.g. a model one section loads and the next reuses)."""

    out_dir: Path
    requested_device: str
    seed: int
    cache: dict[str, Any] = field(default_factory=dict)
    _device: str | None = field(default=None, init=False, repr=False)

    @property
    def device(self) -> str:
        """The device to run on ("cpu", "cuda", ...), resolved on first use so a tour with no model
        does not import torch."""
        if self._device is None:
            self._device = resolve_device(self.requested_device)
        return self._device

    def model(self, name: str) -> Any:
        """`egokit.load(name)` on the tour's device, loaded once and shared by every section."""
        key = f"model:{name}"
        if key not in self.cache:
            from egokit import load

            self.cache[key] = load(name, device=self.device)
        return self.cache[key]


SectionBuild = Callable[[TourContext], Section]


@dataclass(frozen=True)
class SectionBuilder:
    """A registered section: its key and title (shown even when building it fails) and the builder."""

    key: str
    title: str
    build: SectionBuild
    order: int = 100


SECTIONS: list[SectionBuilder] = []


def register_section(key: str, title: str, *, order: int = 100) -> Callable[[SectionBuild], SectionBuild]:
    """Decorator: add a section builder to the tour. Sections run by `order`, then registration order;
    registering a key again replaces the earlier builder."""

    def decorate(build: SectionBuild) -> SectionBuild:
        SECTIONS[:] = [s for s in SECTIONS if s.key != key]
        SECTIONS.append(SectionBuilder(key=key, title=title, build=build, order=order))
        return build

    return decorate


def run_tour(out_dir: Path, device: str = "auto", seed: int = 0,
             import_errors: dict[str, Exception] | None = None) -> Path:
    """Build every registered section and write ``out_dir/index.html`` and ``out_dir/metrics.json``.

    import_errors: modules that should have registered a section but failed to import (module → error);
    each becomes a failed section, so a broken module shows in the report instead of vanishing.

    Returns the path of index.html. If any section failed, the report is still written (the failed
    sections show their error) and `EgokitError` is raised afterwards, naming them. An interrupted tour
    (Ctrl-C) writes nothing: an earlier report in `out_dir` stays as it was, and a folder it created is removed.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir).expanduser()
    ctx = TourContext(out_dir=out_dir, requested_device=device, seed=int(seed))
    if device not in ("auto", "cpu"):
        _ = ctx.device  # an unknown device, or one that is not there, fails before any work
    created = not out_dir.exists()
    _prepare_out_dir(out_dir)
    try:
        builders = _builders(import_errors or {})
        sections = []
        with tqdm(builders, desc="egokit tour", unit="section") as bar:
            for builder in bar:
                bar.set_postfix_str(builder.key)
                sections.append(_build(builder, ctx))
        document = _jsonable(metrics_document(sections, ctx))
        metrics_text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
        page = render_html(sections, ctx)
    except BaseException:  # interrupted (Ctrl-C) or failed before writing: leave no empty report folder
        if created:
            _remove_if_empty(out_dir)
        raise
    index = out_dir / "index.html"
    _write_report(out_dir, metrics_text, page)
    failed = [s for s in sections if s.error is not None]
    if failed:
        names = ", ".join(f"{s.key} ({s.error.splitlines()[0] if s.error else ''})" for s in failed)
        raise EgokitError(f"the tour report was written to {index}, but {len(failed)} of {len(sections)} "
                          f"sections failed: {names}; open the report for details, fix the cause and re-run")
    return index


def resolve_device(device: str) -> str:
    """The device a tour runs on, as a string ("cpu", "cuda", ...): the kit's one resolver,
    `egokit.models.loading.resolve_device` (imported here so a tour with no model does not import torch)."""
    if not isinstance(device, str):
        raise InputError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    from egokit.models.loading import resolve_device as resolve

    return str(resolve(device))


# ------------------------------------------------------------------------------------------- building


def _builders(import_errors: dict[str, Exception]) -> list[SectionBuilder]:
    failures = [_failed_import(module, e) for module, e in import_errors.items()]
    ordered = sorted(enumerate(SECTIONS), key=lambda pair: (pair[1].order, pair[0]))
    return [b for _, b in ordered] + failures


def _failed_import(module: str, error: Exception) -> SectionBuilder:
    def build(ctx: TourContext) -> Section:
        raise EgokitError(f"could not import {module}: {type(error).__name__}: {error}")

    return SectionBuilder(key=module.rsplit(".", 1)[-1], title=f"Sections from {module}", build=build, order=999)


def _build(builder: SectionBuilder, ctx: TourContext) -> Section:
    start = time.perf_counter()
    try:
        section = builder.build(ctx)
        _check_section(section, builder.key)
    except Exception as e:  # noqa: BLE001 - one failed section must not stop the tour
        section = Section(key=builder.key, title=builder.title, summary="", error=_error_text(e))
    section.seconds = time.perf_counter() - start
    return section


def _check_section(section: Any, key: str) -> None:
    if not isinstance(section, Section):
        raise EgokitError(f"the section builder returned a {type(section).__name__}, not a Section")
    if section.key != key:
        raise EgokitError(f"the section builder registered as {key!r} returned a section with key {section.key!r}")
    if section.headline is not None and not isinstance(section.headline, Headline):
        raise EgokitError(f"the headline is a {type(section.headline).__name__}, not a Headline")
    for caption, image in section.images:
        if not isinstance(image, Image.Image):
            raise EgokitError(f"picture {caption!r} is a {type(image).__name__}, not a PIL image")
    json.dumps(_jsonable(section.metrics), allow_nan=False)


def _error_text(e: BaseException) -> str:
    text = str(e) or "(no message)"
    return f"{type(e).__name__}: {text}" if not isinstance(e, EgokitError) else text


# ------------------------------------------------------------------------------------------- output


def metrics_document(sections: list[Section], ctx: TourContext) -> dict[str, Any]:
    """The content of metrics.json: the headline (one row per method, as the report's first table), then per
    section its status, metrics, commands and error."""
    from egokit import __version__

    return {
        "egokit_version": __version__,
        "seed": ctx.seed,
        "device": ctx.requested_device,
        "device_used": ctx._device,  # None when no section needed a device
        "ok": all(s.error is None for s in sections),
        "headline": [s.headline.to_dict() for s in sections if s.headline is not None],
        "sections": {
            s.key: {
                "title": s.title,
                "status": "ok" if s.error is None else "failed",
                "metrics": s.metrics,
                "commands": s.commands,
                "error": s.error,
            }
            for s in sections
        },
    }



def _prepare_out_dir(out_dir: Path) -> None:
    make_folder(out_dir, "the report folder")


def _remove_if_empty(out_dir: Path) -> None:
    try:
        out_dir.rmdir()  # only ever removes an empty folder
    except OSError:
        pass


def _write_report(out_dir: Path, metrics_text: str, page: str) -> None:
    """Write metrics.json and index.html atomically, both in full before either replaces an earlier report's
    file, so an interrupted tour leaves the earlier report as it was (or one whole new report)."""
    with atomic_path(out_dir / "index.html") as page_tmp, atomic_path(out_dir / "metrics.json") as metrics_tmp:
        page_tmp.write_bytes(page.encode("utf-8"))
        metrics_tmp.write_bytes(metrics_text.encode("utf-8"))


def _jsonable(o: Any) -> Any:
    """`o` with numpy/torch values as plain Python, paths as text and NaN/inf as null (strict JSON)."""
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if hasattr(o, "tolist") and not isinstance(o, (str, bytes)):
        return _jsonable(o.tolist())
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, Path):
        return str(o)
    if o is None or isinstance(o, (str, int, bool)):
        return o
    raise TypeError(f"metric value of type {type(o).__name__} is not JSON serialisable")


# ------------------------------------------------------------------------------------------- HTML

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto;
       max-width: 1100px; padding: 1.5em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #666; }
nav ol { columns: 2; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.9em; max-width: 560px; }
table { border-collapse: collapse; margin: 0.8em 0; } td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: 0.7em; overflow-x: auto; }
.error { border: 2px solid #c62828; background: #fdecea; padding: 0.8em; white-space: pre-wrap; }
.ok { color: #2e7d32; } .failed { color: #c62828; font-weight: bold; }
.timing { color: #888; font-size: 0.85em; }
"""


def render_html(sections: list[Section], ctx: TourContext) -> str:
    """The whole report as one self-contained HTML page (no scripts, no external resources)."""
    from egokit import __version__

    failed = sum(s.error is not None for s in sections)
    status = (f'<span class="ok">{len(sections)} of {len(sections)} sections built</span>' if not failed
              else f'<span class="failed">{failed} of {len(sections)} sections failed</span>')
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>egokit tour</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>egokit tour</h1>",
        f'<p class="meta">egokit {_e(__version__)} · seed {_e(ctx.seed)} · device {_e(ctx._device or ctx.requested_device)} · {status}</p>',
        _headline_table(sections),
        _contents(sections),
        *(_section_html(s) for s in sections),
        _summary_table(sections),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _headline_table(sections: list[Section]) -> str:
    """The first screen: one row per method, what it measured here against its baseline and the paper."""
    rows = []
    for s in sections:
        h = s.headline
        if h is None:
            continue
        mark = '<span class="ok">✓</span>' if h.shows else '<span class="failed">✗</span>'
        rows.append(f'<tr><td><a href="#{_e(s.key)}">{_e(h.method)}</a></td><td>{_e(h.metric)}</td>'
                    f"{_value_cell(h.value)}<td>{_e(h.baseline)}</td>{_value_cell(h.baseline_value)}"
                    f"<td>{_e(h.paper)}</td><td>{mark} {_e(h.rule)}</td></tr>")
    failed = [s for s in sections if s.error is not None]
    if failed:
        rows.append(f'<tr><td colspan="7" class="failed">failed: {_e(", ".join(s.key for s in failed))}</td></tr>')
    if not rows:
        return ""
    return ('<h2 id="headline">Headline</h2><table class="headline"><tr><th>method</th><th>key metric</th>'
            "<th>here</th><th>baseline</th><th>here</th><th>the paper, on its benchmark</th>"
            "<th>effect shows here?</th></tr>" + "".join(rows) + "</table>"
            '<p class="meta">Each method\'s section below has its pictures and numbers; the full metrics '
            'table is at the end (<a href="#metrics">all metrics</a>).</p>')


def _contents(sections: list[Section]) -> str:
    items = "".join(
        f'<li><a href="#{_e(s.key)}">{_e(s.title)}</a>{" <span class=failed>(failed)</span>" if s.error else ""}</li>'
        for s in sections
    )
    return f"<nav><h2>Contents</h2><ol>{items}</ol></nav>"


def _summary_table(sections: list[Section]) -> str:
    rows = [
        f"<tr><td>{_e(s.key)}</td><td>{_e(name)}</td>{_value_cell(value)}</tr>"
        for s in sections
        for name, value in _flatten(s.metrics)
    ]
    if not rows:
        return ""
    return ('<h2 id="metrics">All metrics</h2><table><tr><th>section</th><th>metric</th><th>value</th></tr>'
            + "".join(rows) + "</table>")


def _section_html(s: Section) -> str:
    parts = [f'<section id="{_e(s.key)}"><h2>{_e(s.title)}</h2>']
    if s.error is not None:
        parts.append(f'<div class="error"><strong>This section failed.</strong>\n{_e(s.error)}</div>')
    if s.summary:
        parts.append(f"<p>{_e(s.summary)}</p>")
    parts.extend(_figure(caption, image) for caption, image in s.images)
    if s.metrics:
        rows = "".join(f"<tr><td>{_e(k)}</td>{_value_cell(v)}</tr>"
                       for k, v in _flatten(s.metrics))
        parts.append(f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>")
    if s.commands:
        parts.append("<p>Reproduce:</p><pre><code>" + _e("\n".join(s.commands)) + "</code></pre>")
    parts.append(f'<p class="timing">built in {s.seconds:.1f} s</p></section>')
    return "\n".join(parts)


def _figure(caption: str, image: Image.Image) -> str:
    from egokit.viz.png import to_png_bytes

    data = base64.b64encode(to_png_bytes(image)).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}" '
            f'width="{image.width}" height="{image.height}"><figcaption>{_e(caption)}</figcaption></figure>')


def _flatten(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{name}."))
        else:
            out.append((name, value))
    return out


def _value_cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) or (hasattr(value, "dtype") and getattr(value, "ndim", None) == 0)
    return f"<td{' class=num' if numeric else ''}>{_e(format_value(value))}</td>"


def format_value(value: Any) -> str:
    """A metric value as table text: floats to 4 significant digits, other values as they are."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


# ------------------------------------------------------------------------------------------- sections

GALLERY_SCENES = 4
STATS_SCENES = 32


@register_section("shapesworld", "ShapesWorld: scenes with ground truth", order=0)
def shapesworld_section(ctx: TourContext) -> Section:
    """Test-split scenes with masks, boxes and captions; a foil with its wrong word; a personal concept."""
    from egokit.data.shapesworld import ShapesWorld

    sw = ShapesWorld(seed=ctx.seed, size=64, patch=8, split="test")
    scenes = [sw.scene(i) for i in range(STATS_SCENES)]
    shown = scenes[:GALLERY_SCENES]
    foil = sw.foil(shown[0])
    concept = sw.concepts(1)[0]
    images = [
        ("Test scenes with every object's mask (tint and outline), box and attributes; the generated "
         "caption is under each scene.", _scene_gallery(shown)),
        (f"A foil: one {foil.kind} word of the caption swapped ({foil.original!r} → {foil.replacement!r}); "
         "the wrong word is flagged in red.", _foil_picture(shown[0], foil)),
        (f"Personal concept {concept.name!r}: a reference view, a positive query (the same object, moved "
         "and rescaled) and a hard negative (same shape and colours, a different mark).",
         _concept_gallery(sw, concept)),
    ]
    n_objects = [len(s.objects) for s in scenes]
    metrics = {
        "image_size": int(shown[0].image.shape[0]),
        "patch": 8,
        "visual_grid": f"{shown[0].image.shape[0] // 8}x{shown[0].image.shape[1] // 8}",
        "scenes_measured": len(scenes),
        "objects_per_scene_mean": float(sum(n_objects)) / len(scenes),
        "caption_words_mean": float(sum(len(s.caption.split()) for s in scenes)) / len(scenes),
        "object_area_px_mean": _mean_area(scenes),
        "foil_kind": foil.kind,
        "concept": concept.name,
    }
    return Section(
        key="shapesworld",
        title="ShapesWorld: scenes with ground truth",
        summary=("ShapesWorld draws small scenes whose every object, caption word and personal concept is "
                 "known, so each method below is measured against ground truth instead of only shown. "
                 "The pictures are the test split the methods are scored on: masks and boxes, a foil "
                 "caption with its wrong word, and a personal concept with a positive and a hard negative."),
        images=images,
        metrics=metrics,
        commands=[
            f"egokit tour --seed {ctx.seed} --out egokit-report",
            ("python -c \"from egokit.data.shapesworld import ShapesWorld; "
             f"sw = ShapesWorld(seed={ctx.seed}, size=64, patch=8, split='test'); "
             f"print([sw.scene(i).caption for i in range({GALLERY_SCENES})])\""),
        ],
    )


def _scene_gallery(scenes: list[Any]) -> Image.Image:
    from egokit.viz.scene import draw_scene, gallery

    tiles = [draw_scene(s.image, s.objects) for s in scenes]
    return gallery(tiles, [f"{i}: {s.caption}" for i, s in enumerate(scenes)], cols=4, tile=256)


def _foil_picture(scene: Any, foil: Any) -> Image.Image:
    from egokit.viz.scene import draw_caption, gallery

    words = list(getattr(foil, "words", None) or foil.caption.split())
    true_words = list(getattr(scene, "caption_words", None) or scene.caption.split())
    tiles = [draw_caption(scene.image, true_words), draw_caption(scene.image, words, highlight=[foil.index])]
    return gallery(tiles, ["true caption", f"foil ({foil.kind}): word {foil.index} is wrong"], cols=2, tile=256)


def _concept_gallery(sw: Any, concept: Any) -> Image.Image:
    from egokit.viz.scene import draw_scene, gallery

    views = [
        ("reference view", sw.reference_views(concept)[0]),
        ("positive query", sw.concept_query(concept, "positive")),
        ("hard negative", sw.concept_query(concept, "hard_negative")),
    ]
    tiles = [draw_scene(scene.image, scene.objects) for _, scene in views]
    return gallery(tiles, [f"{concept.name}: {label}" for label, _ in views], cols=3, tile=256)


def _mean_area(scenes: list[Any]) -> float:
    areas = [float(o.mask.sum()) for s in scenes for o in s.objects]
    return sum(areas) / len(areas) if areas else 0.0
