"""Predict, before anything runs, what attention capture will cost in memory.

`estimate_attention_memory(config, seq_len)` works on any transformers config. For the published checkpoints
the kit mirrors at real geometry (`egokit.models.tiny.build_tiny(family, geometry="real")`),
`real_memory_report(name)` measures the sequence length the checkpoint's processor gives an image and
scales the estimate to the checkpoint's real depth and heads; `python -m egokit.capture.memory [NAME ...]`
prints it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class AttentionMemory:
    """Bytes held by captured attention for one forward pass.

    full_bytes:     `output_attentions=True` (eager): layers × batch × heads × seq_len² in the model's dtype.
    targeted_bytes: targeted capture: layers × batch × heads × query rows × key columns, float32.
    """

    layers: int
    heads: int
    seq_len: int
    query_rows: int
    key_cols: int
    full_bytes: int
    targeted_bytes: int

    @property
    def ratio(self) -> float:
        return self.full_bytes / max(self.targeted_bytes, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio}


def _text_config(config: Any) -> Any:
    for name in ("text_config", "language_config", "llm_config"):
        sub = getattr(config, name, None)
        if sub is not None and getattr(sub, "num_attention_heads", None):
            return sub
    return config


def estimate_attention_memory(config: Any, seq_len: int, query_rows: int = 10, key_cols: int | None = None,
                              layers: int | None = None, batch: int = 1, dtype: torch.dtype | str | None = None
                              ) -> AttentionMemory:
    """Bytes of full `output_attentions` versus targeted capture for a model config and sequence length.

    `config` is a transformers config (for a VLM the language model's sub-config is used); `layers` is how
    many layers are captured (default: all of them); `key_cols` defaults to the whole sequence.
    """
    cfg = _text_config(config)
    n_layers = int(cfg.num_hidden_layers)
    heads = int(cfg.num_attention_heads)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype is None:
        dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None) or torch.float32
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, torch.float32)
    elem = torch.empty((), dtype=dtype).element_size()
    keys = seq_len if key_cols is None else int(key_cols)
    captured_layers = n_layers if layers is None else int(layers)
    full = n_layers * batch * heads * seq_len * seq_len * elem
    targeted = captured_layers * batch * heads * query_rows * keys * 4
    return AttentionMemory(captured_layers, heads, seq_len, query_rows, keys, full, targeted)


def real_attention_memory(name: str, seq_len: int, query_rows: int = 10, key_cols: int | None = None,
                          layers: int | None = None, batch: int = 1, dtype: torch.dtype | str = "bfloat16",
                          part: str = "language") -> AttentionMemory:
    """`estimate_attention_memory` for the real widths and depths of checkpoint `name` (see
    `egokit.models.tiny.real_checkpoints()`): its language model / text encoder, or `part="vision"` its vision
    tower. `dtype` defaults to bfloat16, the usual inference dtype of these checkpoints on a GPU."""
    from egokit.models.tiny import real_checkpoint

    checkpoint = real_checkpoint(name)
    shape = checkpoint.vision if part == "vision" else checkpoint.text
    return estimate_attention_memory(shape, seq_len, query_rows, key_cols, layers, batch, dtype)


@dataclass(frozen=True)
class RealShapeMemory:
    """What attention capture costs on a real checkpoint for one image, from its real-geometry model.

    seq_len and visual_tokens are measured with the checkpoint's processor geometry; `real` scales them to the
    checkpoint's depth and heads, `cut_down` is the same estimate for the cut-down model that was run.
    """

    name: str
    checkpoint: str
    part: str
    image_size: tuple[int, int]
    seq_len: int
    visual_tokens: int
    real: AttentionMemory
    cut_down: AttentionMemory

    def lines(self) -> list[str]:
        h, w = self.image_size
        r = self.real
        return [
            f"{self.name}: {self.checkpoint}, one {h}x{w} image -> {self.seq_len} tokens in the {self.part} "
            f"stack ({self.visual_tokens} visual)",
            f"  real shape {r.layers} layers x {r.heads} heads: full output_attentions {_mib(r.full_bytes)}, "
            f"targeted ({r.query_rows} rows x {r.key_cols} columns, float32) {_mib(r.targeted_bytes)} "
            f"({r.ratio:.0f}x less)",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "checkpoint": self.checkpoint, "part": self.part,
                "image_size": list(self.image_size), "seq_len": self.seq_len, "visual_tokens": self.visual_tokens,
                "real": self.real.to_dict(), "cut_down": self.cut_down.to_dict()}


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def real_memory_report(name: str, image_size: tuple[int, int] = (512, 512), question: str = "describe the image .",
                       query_rows: int = 10, dtype: torch.dtype | str = "bfloat16") -> RealShapeMemory:
    """Build `name`'s real-geometry model, feed it one grey image of `image_size` (height, width) with
    `question`, and estimate attention memory at that sequence length for the checkpoint's real shape.

    Generative families: the language model's sequence, keys = the visual tokens. Dual encoders (CLIP,
    SigLIP): the vision tower's sequence (class token included), keys = the patch tokens.
    """
    import numpy as np

    from egokit.models.adapters.base import GENERATES_TEXT
    from egokit.models.loading import from_model
    from egokit.models.tiny import build_real, real_checkpoint

    checkpoint = real_checkpoint(name)
    model, processor = build_real(name)
    adapter = from_model(model, processor, name=f"real-geometry-{name}").adapter
    image = np.full((int(image_size[0]), int(image_size[1]), 3), 128, dtype=np.uint8)
    if adapter.has(GENERATES_TEXT):
        inputs = adapter.prepare([image], adapter.prompt(question, 1))
        layout = adapter.visual_layout(inputs, 0)
        seq_len, part, config = int(inputs["input_ids"].shape[1]), "language", model.config
        visual = sum(len(t) for t in layout)
    else:
        inputs = adapter.prepare([image], "a photo")
        layout = adapter.visual_layout(inputs, 0)
        prefix = int(layout[0].extra.get("prefix_tokens", 0))
        visual = len(layout[0])
        seq_len, part, config = prefix + visual, "vision", model.config.vision_config
    real = real_attention_memory(name, seq_len, query_rows, visual, dtype=dtype, part=part)
    cut = estimate_attention_memory(config, seq_len, query_rows, visual, dtype=dtype)
    return RealShapeMemory(name, checkpoint.checkpoint, part, (int(image_size[0]), int(image_size[1])), seq_len,
                           visual, real, cut)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the attention-memory estimate of each named real checkpoint (default: all of them)."""
    from egokit.models.tiny import real_checkpoints

    names = list(real_checkpoints())
    parser = argparse.ArgumentParser(prog="python -m egokit.capture.memory",
                                     description="Attention memory of real checkpoints, at their real shape.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="one of " + ", ".join(names))
    parser.add_argument("--image", default="512x512", help="image size HEIGHTxWIDTH (default 512x512)")
    parser.add_argument("--dtype", default="bfloat16", help="dtype of the attention maps (default bfloat16)")
    parser.add_argument("--rows", type=int, default=10, help="query rows a targeted capture keeps (default 10)")
    args = parser.parse_args(argv)
    try:
        h, w = (int(v) for v in args.image.lower().split("x"))
    except ValueError:
        parser.error(f"--image takes HEIGHTxWIDTH, got {args.image!r}")
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error(f"unknown checkpoint name {', '.join(unknown)}; choose from {', '.join(names)}")
    for name in args.names or names:
        for line in real_memory_report(name, (h, w), query_rows=args.rows, dtype=args.dtype).lines():
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
