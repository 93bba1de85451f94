"""`MisalignmentViewer`: a caption's words coloured by misalignment score, each word's heatmap, an ε slider.

    from egokit.widgets import MisalignmentViewer
    MisalignmentViewer(model, image, "a small red striped circle .")   # scores once, then only re-renders
    MisalignmentViewer(result=r)                                        # view an existing result

The model is called only by the "Score" button (or once at construction when a caption is given);
results are cached per caption. Choosing a word (`word.value = index`) shows its heatmap; moving the ε
slider (`eps.value`) re-flags words. `to_image()` / `_repr_png_` give the same view as a static picture,
so a notebook saved without widget state still shows it.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w
from egokit.widgets.picture import show_picture

from egokit.errors import EgokitError, InputError
from egokit.viz.png import ReprPNG


class MisalignmentViewer(w.VBox, ReprPNG):
    """Interactive view of a `MisalignmentResult` (see the module docstring)."""

    def __init__(self, model: Any = None, image: Any = None, caption: str | None = None, *, result: Any = None,
                 **score_kwargs: Any) -> None:
        if result is None and (model is None or image is None):
            raise InputError("give a model and an image (and a caption), or result=...")
        self._model, self._image, self._kwargs = model, image, dict(score_kwargs)
        self._cache: dict[str, Any] = {}
        self.result: Any = None
        self.caption = w.Text(value=caption or (result.caption if result is not None else ""),
                              description="caption", layout=w.Layout(width="95%"))
        self.score_button = w.Button(description="Score", disabled=model is None, icon="search")
        self.status = w.HTML()
        self.words_html = w.HTML()
        self.word = w.ToggleButtons(options=[], description="word", style={"button_width": "auto"})
        self.eps = w.FloatSlider(value=0.0, min=-1.0, max=0.0, step=0.01, description="ε",
                                 readout_format=".2e", continuous_update=False, layout=w.Layout(width="95%"))
        self.image = w.Image(format="png")
        super().__init__([w.HBox([self.caption, self.score_button]), self.status, self.words_html, self.word,
                          self.eps, self.image])
        self.score_button.on_click(lambda _: self.run())
        self.word.observe(lambda _: self._render(), names="value")
        self.eps.observe(lambda _: self._render(), names="value")
        if result is not None:
            self._cache[result.caption] = result
            self._show(result)
        elif caption:
            self.run()

    # -- model call (cached) --------------------------------------------------------------------------
    def run(self) -> None:
        """Score the caption in the text box (once per caption) and show it."""
        text = self.caption.value
        if text not in self._cache:
            if self._model is None:
                self.status.value = "<i>no model: this viewer shows a saved result</i>"
                return
            from egokit.methods import misalign

            try:
                self._cache[text] = misalign.score(self._model, self._image, text, **self._kwargs)
            except EgokitError as e:
                self.status.value = f"<span style='color:#b00'>{escape(str(e))}</span>"
                return
        self._show(self._cache[text])

    def _show(self, result: Any) -> None:
        self.result = result
        self.status.value = ""
        low = float(result.scores.nan_to_num(0.0).min()) if len(result.words) else 0.0
        bottom = min(low, result.eps, -1e-12) * 1.05
        with self.hold_trait_notifications():
            self.eps.min, self.eps.max = bottom, 0.0
            self.eps.step = -bottom / 200
            self.eps.value = min(max(result.eps, bottom), 0.0)
            self.word.options = [(f"{wd}" if result.words.count(wd) == 1 else f"{wd} ({i})", i)
                                 for i, wd in enumerate(result.words)]
            first = result.most_negative
            self.word.value = first if first is not None else (0 if result.words else None)
        self._render()

    # -- rendering (no model) -------------------------------------------------------------------------
    def current(self) -> Any:
        """The shown result flagged at the slider's ε."""
        return None if self.result is None else self.result.with_eps(self.eps.value)

    def _render(self) -> None:
        r = self.current()
        if r is None:
            return
        from egokit.methods.misalign import caption_html

        self.words_html.value = caption_html(r)
        if r.image is not None:
            show_picture(self.image, r.heatmap_image(self.word.value))

    def to_image(self) -> Any:
        """The current view as a picture (chosen word's heatmap over the caption flagged at ε)."""
        r = self.current()
        if r is None:
            raise InputError("nothing scored yet: press Score")
        return r.to_image(self.word.value)


__all__ = ["MisalignmentViewer"]
