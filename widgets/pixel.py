"""`WordLocator`: a caption's words as buttons; choosing one draws its point and box on the image.

    from egokit.widgets import WordLocator
    WordLocator(model, head, image)          # captions and locates once, then only re-renders
    WordLocator(result=r)                    # view an existing `PixelResult` (no model needed)

The model is called once at construction (when given one and an image) and then only by the buttons:
"Caption" re-runs `egokit.pixel.localize` with the prompt in the text box, "Find" runs `egokit.pixel.refer`
on the expression; results are cached per prompt and per expression. Choosing a word (`word.value =
index`, or None for every word's point) only re-renders. `to_image()` / `_repr_png_` give the same view as
a static picture, so a notebook saved without widget state still shows it.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w
from egokit.widgets.picture import show_picture

from egokit.errors import EgokitError, InputError
from egokit.viz.png import ReprPNG

ALL_WORDS = "all words"


class WordLocator(w.VBox, ReprPNG):
    """Interactive view of `PixelResult`s (see the module docstring)."""

    def __init__(self, model: Any = None, head: Any = None, image: Any = None, *, result: Any = None,
                 prompt: str = "describe the image .", **localize_kwargs: Any) -> None:
        if result is None and (model is None or head is None or image is None):
            raise InputError("give a model, a point head and an image, or result=...")
        self._model, self._head, self._image, self._kwargs = model, head, image, dict(localize_kwargs)
        self._captions: dict[str, Any] = {}
        self._referrals: dict[str, Any] = {}
        self.result: Any = None
        live = model is not None
        self.prompt = w.Text(value=prompt if result is None else result.prompt, description="prompt",
                             layout=w.Layout(width="70%"))
        self.caption_button = w.Button(description="Caption", disabled=not live, icon="comment")
        self.expression = w.Text(value="", placeholder="the red circle", description="refer",
                                 layout=w.Layout(width="70%"))
        self.find_button = w.Button(description="Find", disabled=not live, icon="search")
        self.status = w.HTML()
        self.word = w.ToggleButtons(options=[(ALL_WORDS, None)], value=None, description="word",
                                    style={"button_width": "auto"})
        self.image = w.Image(format="png")
        super().__init__([w.HBox([self.prompt, self.caption_button]), w.HBox([self.expression, self.find_button]),
                          self.status, self.word, self.image])
        self.caption_button.on_click(lambda _: self.run())
        self.find_button.on_click(lambda _: self.find())
        self.word.observe(lambda _: self._render(), names="value")
        if result is not None:
            if result.kind == "refer":
                self._referrals[result.answer] = result
                self.expression.value = result.answer
            else:
                self._captions[result.prompt] = result
            self._show(result)
        else:
            self.run()

    # -- model calls (cached) -------------------------------------------------------------------------
    def run(self) -> None:
        """Caption the image for the prompt in the text box (once per prompt) and show its words."""
        key = self.prompt.value
        if key not in self._captions:
            if self._model is None:
                self.status.value = "<i>no model: this view shows a saved result</i>"
                return
            from egokit.methods.pixel import localize

            try:
                self._captions[key] = localize(self._model, self._head, self._image, prompt=key, **self._kwargs)
            except EgokitError as e:
                self.status.value = f"<span style='color:#b00'>{escape(str(e))}</span>"
                return
        self._show(self._captions[key])

    def find(self) -> None:
        """Locate the expression in the text box (once per expression) and show its box."""
        key = self.expression.value.strip()
        if key not in self._referrals:
            if self._model is None:
                self.status.value = "<i>no model: this view shows a saved result</i>"
                return
            from egokit.methods.pixel import refer

            try:
                self._referrals[key] = refer(self._model, self._head, self._image, key)
            except EgokitError as e:
                self.status.value = f"<span style='color:#b00'>{escape(str(e))}</span>"
                return
        self._show(self._referrals[key])

    def _show(self, result: Any) -> None:
        self.result = result
        if result.kind == "refer":
            x0, y0, x1, y1 = result.box
            self.status.value = (f"<b>{escape(str(result.answer))}</b>: box ({x0:.0f}, {y0:.0f}) – ({x1:.0f}, {y1:.0f}) px")
        else:
            self.status.value = f"<b>{escape(str(result.answer))}</b>"
        options = [(ALL_WORDS, None)] + [(wd if result.words.count(wd) == 1 else f"{wd} ({i})", i)
                                         for i, wd in enumerate(result.words)]
        with self.hold_trait_notifications():
            self.word.options = options
            self.word.value = None
        self._render()

    # -- rendering (no model) -------------------------------------------------------------------------
    def _render(self) -> None:
        if self.result is not None:
            show_picture(self.image, self.result.to_image(self.word.value))

    def to_image(self) -> Any:
        """The current view as a picture (the chosen word's point and box, or every word's point)."""
        if self.result is None:
            raise InputError("nothing located yet: press Caption")
        return self.result.to_image(self.word.value)


__all__ = ["WordLocator"]
