"""The visual debugger: for every word a VLM generates, where in the image does it look?

`explore(loaded, image, prompt)` generates the answer, then computes, for each generated token, four
views over the image's visual tokens:

- ``attention``: the token's attention row restricted to the visual tokens (any layer/head, or mean);
- ``rollout``: attention rollout through all language layers (needs the full maps of every layer — it is
  skipped, with a note, when they would not fit the memory limit);
- ``gradient``: signed gradient × attention of the answer's log-likelihood (mean over heads and layers);
- the memory estimate of what was captured versus full `output_attentions`.

The result renders itself (`to_image`, `_repr_png_`), so it shows in a notebook with no kernel too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image, ImageDraw

from egokit.capture.aggregate import rollout as attention_rollout
from egokit.capture.engine import capture
from egokit.capture.look import Look, generate_and_look
from egokit.capture.memory import AttentionMemory, estimate_attention_memory
from egokit.data.images import load_image
from egokit.errors import InputError
from egokit.viz.heatmap import overlay_heatmap
from egokit.viz.png import ReprPNG
from egokit.viz.scene import upscale

VIEWS = ("attention", "rollout", "gradient")
ROLLOUT_LIMIT_BYTES = 512 * 2**20


@dataclass
class Exploration(ReprPNG):
    """Where each generated token looks. See the module docstring for the views."""

    image: Image.Image
    look: Look
    rollout_rows: torch.Tensor | None  # (T, N_visual of image 0) or None when skipped
    memory: AttentionMemory
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> list[str]:
        return self.look.tokens

    @property
    def answer(self) -> str:
        return self.look.answer

    def scores(self, token: int | str, view: str = "attention", layer: int | None = None,
               head: int | None = None) -> torch.Tensor:
        """Per-visual-token scores (N,) of image 0 for one generated token and one view."""
        t = self.look.token_index(token)
        if view == "attention":
            att = self.look.attentions[:, :, t, self.look.columns(0)]  # (L, H, N)
            if layer is not None:
                if not -att.shape[0] <= layer < att.shape[0]:
                    raise InputError(f"layer {layer} does not exist: captured {att.shape[0]} layers")
                att = att[layer : layer + 1 if layer != -1 else None]
            if head is not None:
                if not -att.shape[1] <= head < att.shape[1]:
                    raise InputError(f"head {head} does not exist: the model has {att.shape[1]} heads")
                att = att[:, head : head + 1 if head != -1 else None]
            return att.mean((0, 1))
        if view == "rollout":
            if self.rollout_rows is None:
                raise InputError("rollout was skipped for this input: " + "; ".join(self.notes))
            return self.rollout_rows[t]
        if view == "gradient":
            return self.look.token_scores(t, gradient=True)
        raise InputError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")

    def overlay(self, token: int | str, view: str = "attention", layer: int | None = None,
                head: int | None = None) -> Image.Image:
        """The image with one view's heatmap for one token laid over it."""
        boxes = self.look.layout[0].boxes
        s = self.scores(token, view, layer, head)
        return overlay_heatmap(self.image, s.numpy(), boxes.numpy(), alpha=0.6, signed=(view == "gradient"))

    def to_image(self, token: int | str | None = None) -> Image.Image:
        """A strip: the image, then attention / rollout / gradient × attention for one token."""
        t = self.look.token_index(token) if token is not None else self._default_token()
        tiles = [("image", self.image)]
        for view in VIEWS:
            if view == "rollout" and self.rollout_rows is None:
                continue
            tiles.append((view, self.overlay(t, view)))
        return _strip(tiles, title=f"{self.look.prompt} -> {self.answer}   [token: {self.tokens[t]!r}]")

    def _default_token(self) -> int:
        """The first token that looks like a content word (else the first token)."""
        for i, tok in enumerate(self.tokens):
            if tok.strip().isalpha() and len(tok.strip()) > 2:
                return i
        return 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt": self.look.prompt,
            "answer": self.answer,
            "tokens": self.tokens,
            "layers": self.look.layers,
            "grid": list(self.look.layout[0].grid),
            "memory": self.memory.to_dict(),
            "notes": self.notes,
            "tokens_scores": {},
        }
        for i, tok in enumerate(self.tokens):
            views = {v: self.scores(i, v).tolist() for v in VIEWS if not (v == "rollout" and self.rollout_rows is None)}
            out["tokens_scores"][f"{i}:{tok}"] = views
        return out


def explore(loaded: Any, image: Any, prompt: str, max_new_tokens: int = 20, rollout: bool | None = None,
            answer: str | None = None) -> Exploration:
    """Generate an answer and compute attention, rollout and gradient × attention for every token.

    rollout: None = when the full maps of all layers fit in 512 MiB; True/False to force.
    answer: look at this answer (teacher forcing) instead of generating one.
    """
    picture = load_image(image)
    look = generate_and_look(loaded, picture, prompt, max_new_tokens=max_new_tokens, grad=True, answer=answer)
    seq_len = len(look.input_ids)
    memory = estimate_attention_memory(loaded.model.config, seq_len, query_rows=len(look.tokens),
                                       key_cols=sum(len(t) for t in look.layout), dtype=torch.float32)
    notes: list[str] = []
    full_bytes = memory.full_bytes
    do_rollout = rollout if rollout is not None else full_bytes <= ROLLOUT_LIMIT_BYTES
    rows = None
    if do_rollout:
        rows = _rollout_rows(loaded, look)
    else:
        notes.append(f"rollout needs all layers' full maps ({full_bytes / 2**20:.0f} MiB); pass rollout=True to force")
    return Exploration(image=picture, look=look, rollout_rows=rows, memory=memory, notes=notes)


def _rollout_rows(loaded: Any, look: Look) -> torch.Tensor:
    """Rollout rows of the generated tokens against image 0's visual tokens: (T, N_visual)."""
    with torch.no_grad(), capture(loaded, part="language") as cap:
        loaded.model(**look.inputs)
    maps = cap.stack()  # (L, 1, H, S, S)
    rolled = attention_rollout(maps)[0]  # (S, S)
    visual = look.layout[0].positions
    return rolled[torch.tensor(look.positions)][:, visual].float()


def _strip(tiles: list[tuple[str, Image.Image]], title: str, tile: int = 224) -> Image.Image:
    pad, head = 8, 22
    width = len(tiles) * (tile + pad) + pad
    canvas = Image.new("RGB", (width, tile + head * 2 + pad), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 4), title[:140], fill="black")
    for i, (label, img) in enumerate(tiles):
        big, _ = upscale(img, target=tile)
        big = big.resize((tile, tile), Image.NEAREST) if big.size != (tile, tile) else big
        x = pad + i * (tile + pad)
        canvas.paste(big, (x, head))
        draw.text((x, head + tile + 4), label, fill="black")
    return canvas


def exploration_summary(result: Exploration) -> list[str]:
    """Human-readable lines for the CLI."""
    m = result.memory
    lines = [f"answer: {result.answer}", f"tokens: {' | '.join(result.tokens)}",
             f"captured {m.targeted_bytes / 1024:.1f} KiB of attention rows instead of "
             f"{m.full_bytes / 2**20:.2f} MiB for full output_attentions ({m.ratio:.0f}x less)"]
    lines += [f"note: {n}" for n in result.notes]
    return lines

