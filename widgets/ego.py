"""Ego widgets: pick keywords and see the tokens they select; any attention map by layer/head/token; memory
types compared side by side.

    from egokit.widgets import KeywordPicker, TokenHeatmap, MemoryCompare
    picker = KeywordPicker(model, reference_image, name="bix")   # one description + one forward, cached
    picker.memory()                                              # a ConceptMemory from the current choice
    TokenHeatmap(picker.look)                                    # any layer / head / description token
    MemoryCompare(egokit.ego.evaluate(model))                    # tokens, bytes, latency, F1 (bars)

The model runs once per widget (at construction, or behind the "Describe" button); toggles, sliders and
dropdowns only re-score cached attention and re-render. Each widget can be driven headlessly by setting
its controls' `.value` and reading `.image.value` (PNG bytes); `to_image()` / `_repr_png_` give the same
view as a static picture for notebooks saved without widget state.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import ipywidgets as w
import torch
from egokit.widgets.picture import picture_box, show_picture

from egokit.errors import EgokitError, InputError
from egokit.viz.png import ReprPNG

_MEAN = "mean"


class KeywordPicker(w.VBox, ReprPNG):
    """The model's description of a reference view as toggleable keyword tokens; the heatmap of the
    chosen keywords' attention and the tokens a budget keeps, re-rendered on every change.

    Controls: `words` (one ToggleButton per word; keywords start on), `budget` (share of the tokens),
    `layers` (SelectMultiple), `aggregate` ("mean"/"max"). Results: `scores()`, `selected()`, `memory()`.
    """

    def __init__(self, model: Any = None, image: Any = None, name: str = "concept", *, look: Any = None,
                 keywords: list[str] | None = None, description: str | None = None, budget: float = 0.2,
                 format: Any = None) -> None:
        if look is None and (model is None or image is None):
            raise InputError("give a model and a reference image, or look=egokit.ego.look_at(...)")
        self._model, self._image, self._format = model, image, format
        self._kw = {"keywords": keywords, "description": description}
        self.name = name
        self.look: Any = None
        self.status = w.HTML()
        self.describe_button = w.Button(description="Describe", icon="eye", disabled=model is None)
        self.words_box = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.words: list[w.ToggleButton] = []
        self.budget = w.FloatSlider(value=budget, min=0.02, max=1.0, step=0.01, description="budget",
                                    readout_format=".0%", continuous_update=False)
        self.layers = w.SelectMultiple(options=[], description="layers", rows=4)
        self.aggregate = w.Dropdown(options=["mean", "max"], value="mean", description="aggregate")
        self.info = w.HTML()
        self.image = w.Image(format="png")
        controls = w.VBox([self.budget, self.aggregate, self.layers, self.info], layout=w.Layout(width="360px"))
        super().__init__([w.HBox([self.describe_button, self.status]), self.words_box, w.HBox([self.image, controls])])
        self.describe_button.on_click(lambda _: self.run())
        for control in (self.budget, self.layers, self.aggregate):
            control.observe(lambda _: self._render(), names="value")
        if look is not None:
            self._show(look)
        else:
            self.run()

    # -- model call (once) -------------------------------------------------------------------------------
    def run(self) -> None:
        """Describe the reference view and capture its words' attention (the only model call)."""
        from egokit.methods.ego import look_at

        try:
            self._show(look_at(self._model, self._image, format=self._format, **self._kw))
        except EgokitError as e:
            self.status.value = f"<span style='color:#b00'>{escape(str(e))}</span>"

    def _show(self, look: Any) -> None:
        self.look = look
        self.status.value = f"<i>{escape(str(look.description))}</i>"
        self.words = []
        for word, on in zip(look.words, look.keyword):
            button = w.ToggleButton(value=bool(on), description=word.text, layout=w.Layout(width="auto"))
            button.observe(lambda _: self._render(), names="value")
            self.words.append(button)
        self.words_box.children = tuple(self.words)
        with self.hold_trait_notifications():
            self.layers.options = [(f"layer {layer}", layer) for layer in look.layers]
            self.layers.value = tuple(look.layers)
        self._render()

    # -- pure re-scoring ---------------------------------------------------------------------------------
    def chosen_words(self) -> list[int]:
        return [i for i, b in enumerate(self.words) if b.value]

    def scores(self) -> torch.Tensor:
        """(N,) token scores for the current keywords, layers and aggregation."""
        layers = list(self.layers.value) or None
        if not self.layers.value:
            return torch.zeros(self.look.n_tokens)
        return self.look.scores(self.chosen_words(), layers=layers, aggregate=self.aggregate.value)

    def k(self) -> int:
        from egokit.methods.ego import budget_k

        return budget_k(float(self.budget.value), self.look.n_tokens)

    def selected(self) -> torch.Tensor:
        """Indices of the tokens the current choice keeps (raster order)."""
        from egokit.methods.ego import top_k_raster

        if not self.chosen_words() or not self.layers.value:
            return torch.zeros(0, dtype=torch.long)
        return top_k_raster(self.scores(), self.k())

    def memory(self) -> Any:
        """A `ConceptMemory` from the current choice (no model call)."""
        from egokit.methods.ego import ConceptMemory, MemoryView

        if self.look is None:
            raise InputError("nothing to remember yet: describe the reference view first")
        chosen = self.selected()
        model = self._model
        view = MemoryView(scores=self.scores().float(), selected=chosen, boxes=self.look.boxes, grid=self.look.grid,
                          image=self.look.image)
        return ConceptMemory(
            name=self.name, embeddings=self.look.features[chosen.to(self.look.features.device)].cpu(), selection="ego",
            description=self.look.description, keywords=[self.words[i].description for i in self.chosen_words()],
            views=[view], layers=list(self.layers.value), aggregate=self.aggregate.value, budget=[int(chosen.numel())],
            fingerprint=model.fingerprint() if model is not None else "",
            model_name=getattr(model, "name", ""),
        )

    # -- rendering ----------------------------------------------------------------------------------------
    def to_image(self) -> Any:
        from egokit.methods.ego import selection_picture

        if self.look is None:
            raise InputError("nothing to show yet: describe the reference view first")
        return selection_picture(self.look.image, self.scores(), self.look.boxes, self.selected().tolist())

    def _render(self) -> None:
        if self.look is None:
            return
        keys = [self.words[i].description for i in self.chosen_words()]
        self.info.value = (f"keywords: <b>{escape(' '.join(keys) or '(none)')}</b> · layers {list(self.layers.value)} · "
                           f"{self.aggregate.value} · keeps {int(self.selected().numel())} of {self.look.n_tokens} tokens")
        show_picture(self.image, self.to_image())


class TokenHeatmap(w.VBox, ReprPNG):
    """Any captured attention map over an image's visual tokens, by layer, head and query token.

    source: a `ReferenceLook` (`egokit.ego.look_at`), a `Look` (`egokit.capture.look.generate_and_look`,
    give `image=` too; its first image is shown), or `attentions=(L, H, T, N)` with `tokens`, `boxes`,
    `image` and optionally `layers`. Controls: `layer`, `head` and `token` dropdowns ("mean" = mean over it).
    """

    def __init__(self, source: Any = None, image: Any = None, *, attentions: torch.Tensor | None = None,
                 tokens: list[str] | None = None, boxes: Any = None, layers: list[int] | None = None) -> None:
        if source is not None:
            att, tokens, boxes, layers, image = self._from_source(source, image)
        elif attentions is None or tokens is None or boxes is None or image is None:
            raise InputError("give a ReferenceLook or Look, or attentions= with tokens=, boxes= and image=")
        else:
            att = attentions
        if att.dim() != 4 or att.shape[2] != len(tokens) or att.shape[3] != len(boxes):
            raise InputError(f"attentions must be (layers, heads, tokens, visual tokens) matching {len(tokens)} "
                             f"tokens and {len(boxes)} boxes, got {tuple(att.shape)}")
        self.attentions = att.detach().float().cpu()
        self.tokens = list(tokens)
        self.boxes = boxes
        self.source_image = image
        self.layer_ids = list(layers) if layers is not None else list(range(att.shape[0]))
        self.layer = w.Dropdown(options=[(_MEAN, _MEAN)] + [(f"layer {lid}", i) for i, lid in enumerate(self.layer_ids)],
                                value=_MEAN, description="layer")
        self.head = w.Dropdown(options=[(_MEAN, _MEAN)] + [(f"head {h}", h) for h in range(att.shape[1])],
                               value=_MEAN, description="head")
        self.token = w.Dropdown(options=[(_MEAN, _MEAN)] + [(f"{i}: {t.strip() or repr(t)}", i)
                                                             for i, t in enumerate(self.tokens)],
                                value=_MEAN, description="token")
        self.info = w.HTML()
        self.image = w.Image(format="png")
        super().__init__([w.HBox([self.layer, self.head, self.token]), self.info, self.image])
        for control in (self.layer, self.head, self.token):
            control.observe(lambda _: self._render(), names="value")
        self._render()

    @staticmethod
    def _from_source(source: Any, image: Any) -> tuple[Any, ...]:
        if hasattr(source, "features") and hasattr(source, "words"):  # ReferenceLook
            return source.attentions, source.tokens, source.boxes, source.layers, source.image
        if hasattr(source, "layout") and hasattr(source, "columns"):  # Look
            if image is None:
                raise InputError("a Look does not keep its image: pass image=")
            cols = source.columns(0)
            return (source.attentions[..., cols], source.tokens, source.layout[0].boxes, source.layers, image)
        raise InputError(f"cannot show a {type(source).__name__}: pass a ReferenceLook or a Look")

    def scores(self) -> torch.Tensor:
        """(N,) the map for the current layer, head and token choice."""
        a = self.attentions
        a = a.mean(0) if self.layer.value == _MEAN else a[int(self.layer.value)]
        a = a.mean(0) if self.head.value == _MEAN else a[int(self.head.value)]
        return a.mean(0) if self.token.value == _MEAN else a[int(self.token.value)]

    def to_image(self) -> Any:
        from egokit.methods.ego import selection_picture

        return selection_picture(self.source_image, self.scores(), self.boxes, [], alpha=0.7)

    def _render(self) -> None:
        s = self.scores()
        self.info.value = f"max {float(s.max()):.4f} · sum over visual tokens {float(s.sum()):.4f}"
        show_picture(self.image, self.to_image())


class MemoryCompare(w.VBox, ReprPNG):
    """Tokens, bytes, latency and F1 per memory type, as bars (from `egokit.ego.evaluate` or the nested
    document of `egokit ego eval`).

    Control: `metric` ("all" or one of f1, memory_tokens, memory_bytes, answer_s)."""

    def __init__(self, results: Any) -> None:
        from egokit.methods.ego import COMPARE_METRICS, EgoEvaluation, compare_rows

        if isinstance(results, EgoEvaluation):
            results = results.to_dict()
        if not isinstance(results, Mapping) or not compare_rows(results):
            raise InputError("pass the result of egokit.ego.evaluate (or its to_dict())")
        self.results = dict(results)
        available = [m for m in COMPARE_METRICS if m in compare_rows(results)]
        self.metric = w.ToggleButtons(options=["all", *available], value="all", description="show")
        self.image = w.Image(format="png")
        super().__init__([self.metric, self.image])
        self.metric.observe(lambda _: self._render(), names="value")
        self._pictures: dict[str, Any] = {}
        self._box: tuple[int, int] | None = None  # every metric in the box of the first picture
        self._render()

    def to_image(self) -> Any:
        from egokit.methods.ego import compare_picture

        metrics = None if self.metric.value == "all" else [self.metric.value]
        return compare_picture(self.results, metrics)

    def _render(self) -> None:
        key = self.metric.value
        if key not in self._pictures:
            self._pictures[key] = self.to_image()
        if self._box is None:
            self._box = picture_box(self._pictures[key])
        show_picture(self.image, self._pictures[key], self._box)


__all__ = ["KeywordPicker", "MemoryCompare", "TokenHeatmap"]
