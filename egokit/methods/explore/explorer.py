"""The visual debugger: for every word a VLM generates, where in the image does it look?

`explore(loaded, image, prompt)` generates the answer, then computes, for each generated token, four
views over the image's visual tokens:

- ``attention``: the token's attention row restricted to the visual tokens (any layer/head, or mean);
- ``rollout``: attention rollout through all language layers (needs the full maps of every layer — it is
  skipped, with a note, when they would not fit the memory limit);
- ``gradient``: signed gradient × attention of the answer's log-likelihood (mean over heads and layers);
- the memory estimate of what was captured versus full `output_attentions`.

The model must generate text (the family's `GENERATES_TEXT` capability). The result is an
`egokit.results.Result`: it renders itself (`to_image`, `_repr_png_`), so it shows in a notebook with no
kernel too, turns into JSON (`to_dict`) and is saved as one ``.safetensors`` file (`save` / `load`,
kind "exploration", version 1) that keeps every view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageDraw

from egokit.capture.aggregate import rollout as attention_rollout
from egokit.capture.engine import capture
from egokit.capture.look import Look, generate_and_look
from egokit.capture.memory import AttentionMemory, estimate_attention_memory
from egokit.data.images import load_image
from egokit.errors import InputError
from egokit.models.adapters.base import GENERATES_TEXT, ImageTokens
from egokit.results import Result
from egokit.viz import fonts
from egokit.viz.heatmap import overlay_heatmap
from egokit.viz.scene import upscale

if TYPE_CHECKING:
    from egokit.models.loading import LoadedModel

VIEWS = ("attention", "rollout", "gradient")
ROLLOUT_LIMIT_BYTES = 512 * 2**20
FILE_KIND = "exploration"
FILE_VERSION = 1


@dataclass
class Exploration(Result):
    """Where each generated token looks. See the module docstring for the views.

    A loaded file (`Exploration.load`) has every view; only the teacher-forced model inputs
    (`look.inputs`), needed to compute a view anew, are not kept.
    """

    FILE_KIND: ClassVar[str] = FILE_KIND
    FILE_VERSION: ClassVar[int] = FILE_VERSION

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
        t = self.look.token_index(token) if token is not None else self.default_token()
        tiles = [("image", self.image)]
        for view in VIEWS:
            if view == "rollout" and self.rollout_rows is None:
                continue
            tiles.append((view, self.overlay(t, view)))
        return _strip(tiles, title=f"{self.look.prompt} -> {self.answer}   [token: {self.tokens[t]!r}]")

    def default_token(self) -> int:
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

    # -- file ----------------------------------------------------------------------------------------
    def _file_tensors(self) -> dict[str, torch.Tensor]:
        look = self.look
        tensors = {"image": torch.from_numpy(np.array(self.image.convert("RGB"), dtype=np.uint8)),
                   "attentions": look.attentions.float()}
        if look.grads is not None:
            tensors["grads"] = look.grads.float()
        if look.input_ids is not None:
            tensors["input_ids"] = look.input_ids
        if self.rollout_rows is not None:
            tensors["rollout_rows"] = self.rollout_rows.float()
        for i, tokens in enumerate(look.layout):
            tensors.update({f"layout.{i}.positions": tokens.positions, f"layout.{i}.boxes": tokens.boxes,
                            f"layout.{i}.feature_index": tokens.feature_index})
            tensors.update({f"layout.{i}.extra.{k}": v for k, v in tokens.extra.items()
                            if isinstance(v, torch.Tensor)})
        return tensors

    def _file_meta(self) -> dict[str, Any]:
        look = self.look
        return {
            "prompt": look.prompt, "answer": look.answer, "tokens": list(look.tokens),
            "token_ids": [int(i) for i in look.token_ids], "positions": [int(p) for p in look.positions],
            "layers": [int(v) for v in look.layers],
            "layout": [{"grid": list(t.grid), "image_size": list(t.image_size), "extra": _json_extra(t.extra)}
                       for t in look.layout],
            "memory": {k: v for k, v in self.memory.to_dict().items() if k != "ratio"},
            "notes": list(self.notes),
        }

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Exploration:
        layout = []
        for i, entry in enumerate(meta["layout"]):
            extra: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in entry["extra"].items()}
            prefix = f"layout.{i}.extra."
            extra.update({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            layout.append(ImageTokens(positions=tensors[f"layout.{i}.positions"], boxes=tensors[f"layout.{i}.boxes"],
                                      feature_index=tensors[f"layout.{i}.feature_index"],
                                      grid=(int(entry["grid"][0]), int(entry["grid"][1])),
                                      image_size=(int(entry["image_size"][0]), int(entry["image_size"][1])),
                                      extra=extra))
        attentions = tensors["attentions"]
        tokens = [str(t) for t in meta["tokens"]]
        if attentions.dim() != 4 or attentions.shape[2] != len(tokens) or not layout:
            raise ValueError("the attention rows, the tokens and the layout disagree")
        look = Look(prompt=str(meta["prompt"]), answer=str(meta["answer"]), tokens=tokens,
                    token_ids=[int(i) for i in meta["token_ids"]], positions=[int(p) for p in meta["positions"]],
                    layers=[int(v) for v in meta["layers"]], layout=layout, attentions=attentions,
                    grads=tensors.get("grads"), input_ids=tensors.get("input_ids"))
        image = Image.fromarray(tensors["image"].numpy())
        return cls(image=image, look=look, rollout_rows=tensors.get("rollout_rows"),
                   memory=AttentionMemory(**{k: int(v) for k, v in meta["memory"].items()}),
                   notes=[str(n) for n in meta["notes"]])


def _json_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON part of an `ImageTokens.extra` (tensors go to the file's tensors; anything else that is
    not JSON is left out)."""
    out: dict[str, Any] = {}
    for key, value in extra.items():
        if isinstance(value, torch.Tensor):
            continue
        value = list(value) if isinstance(value, tuple) else value
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out


def explore(loaded: LoadedModel, image: Any, prompt: str, max_new_tokens: int = 20, rollout: bool | None = None,
            answer: str | None = None) -> Exploration:
    """Generate an answer and compute attention, rollout and gradient × attention for every token.

    loaded: a `LoadedModel` of a family that generates text (`CapabilityError` otherwise).
    rollout: None = when the full maps of all layers fit in 512 MiB; True/False to force.
    answer: look at this answer (teacher forcing) instead of generating one.
    """
    loaded.adapter.require(GENERATES_TEXT, "the explorer")
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


def _rollout_rows(loaded: LoadedModel, look: Look) -> torch.Tensor:
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
    draw.text((pad, 4), title[:140], fill="black", font=fonts.font(13))
    for i, (label, img) in enumerate(tiles):
        big, _ = upscale(img, target=tile)
        big = big.resize((tile, tile), Image.NEAREST) if big.size != (tile, tile) else big
        x = pad + i * (tile + pad)
        canvas.paste(big, (x, head))
        draw.text((x, head + tile + 4), label, fill="black", font=fonts.font(13))
    return canvas


def exploration_summary(result: Exploration) -> list[str]:
    """Human-readable lines for the CLI."""
    m = result.memory
    lines = [f"answer: {result.answer}", f"tokens: {' | '.join(result.tokens)}",
             f"captured {m.targeted_bytes / 1024:.1f} KiB of attention rows instead of "
             f"{m.full_bytes / 2**20:.2f} MiB for full output_attentions ({m.ratio:.0f}x less)"]
    lines += [f"note: {n}" for n in result.notes]
    return lines



__all__ = ["FILE_KIND", "FILE_VERSION", "ROLLOUT_LIMIT_BYTES", "VIEWS", "Exploration", "exploration_summary",
           "explore"]
