"""`AttentionExplorer`: pick a generated word, see where it looks — per layer and head, rollout, gradient.

The model runs once per (image, prompt), when the widget is made or when Run is pressed; every other
control only re-renders the cached `Exploration`. Drive it headlessly by setting `.token.value`,
`.view.value`, `.layer.value`, `.head.value` and reading `.picture.value` (PNG bytes).
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w
from egokit.widgets.picture import show_picture

from egokit.errors import InputError
from egokit.methods.explore import VIEWS, Exploration, explore
from egokit.viz.png import to_png_bytes

MEAN = "mean"


class AttentionExplorer(w.VBox):
    """Generate an answer for (image, prompt) and show, for any generated token, where it looks."""

    def __init__(self, model: Any, image: Any, prompt: str, max_new_tokens: int = 20, run: bool = True) -> None:
        if isinstance(model, str):
            from egokit import load

            model = load(model)
        self.model = model
        self.image_source = image
        self.max_new_tokens = max_new_tokens
        self.result: Exploration | None = None

        self.prompt = w.Text(value=prompt, description="prompt", layout=w.Layout(width="60%"))
        self.run_button = w.Button(description="Run", button_style="primary", tooltip="generate and capture")
        self.token = w.ToggleButtons(options=[], description="token")
        self.view = w.Dropdown(options=list(VIEWS), value="attention", description="view")
        self.layer = w.Dropdown(options=[MEAN], value=MEAN, description="layer")
        self.head = w.Dropdown(options=[MEAN], value=MEAN, description="head")
        self.picture = w.Image(format="png")
        self.info = w.HTML()
        self.run_button.on_click(lambda _: self.run())
        for control in (self.token, self.view, self.layer, self.head):
            control.observe(lambda _: self.render(), names="value")
        # The picture with its controls beside it, so both fit one laptop screen.
        controls = w.VBox([self.view, self.layer, self.head, self.info], layout=w.Layout(width="360px"))
        super().__init__([w.HBox([self.prompt, self.run_button]), self.token, w.HBox([self.picture, controls])])
        if run:
            self.run()

    def run(self) -> None:
        """Call the model (generate + capture) for the current prompt; cache the result."""
        self.info.value = "<i>running the model…</i>"
        result = explore(self.model, self.image_source, self.prompt.value, max_new_tokens=self.max_new_tokens)
        self.result = result
        att = result.look.attentions
        with self.hold_trait_notifications():
            self.layer.options = [MEAN, *range(att.shape[0])]
            self.head.options = [MEAN, *range(att.shape[1])]
            self.view.options = [v for v in VIEWS if v != "rollout" or result.rollout_rows is not None]
            self.token.options = [(f"{i}:{tok.strip() or repr(tok)}", i) for i, tok in enumerate(result.tokens)]
            self.token.value = result.default_token()
        self.render()

    def render(self) -> None:
        """Re-draw from the cached result (no model call)."""
        result = self.result
        if result is None or self.token.value is None:
            return
        layer = None if self.layer.value == MEAN else int(self.layer.value)
        head = None if self.head.value == MEAN else int(self.head.value)
        if self.view.value != "attention":
            layer = head = None
        show_picture(self.picture, result.overlay(self.token.value, self.view.value, layer, head).resize((320, 320)))
        m = result.memory
        notes = "".join(f"<br><i>{escape(str(n))}</i>" for n in result.notes)
        self.info.value = (
            f"<b>answer</b>: {escape(str(result.answer))}<br>captured {m.targeted_bytes / 1024:.1f} KiB of attention rows "
            f"instead of {m.full_bytes / 2**20:.2f} MiB for full output_attentions ({m.ratio:.0f}× less){notes}"
        )

    def to_image(self) -> Any:
        """The widget's static picture: the strip of all views for the chosen token."""
        if self.result is None:
            raise InputError("nothing explored yet: press Run")
        return self.result.to_image(self.token.value)

    def _repr_png_(self) -> bytes | None:
        """Static twin (`to_image`), shown where the live widget cannot be."""
        return None if self.result is None else to_png_bytes(self.to_image())
