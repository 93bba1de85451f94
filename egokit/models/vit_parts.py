"""A frozen Hugging Face ViT seen as parts: embeddings, blocks, attention projections, pooling.

Prompt methods (SA²VP, VPT) run the frozen blocks themselves, one at a time, on token sequences they
build (two pathways, prepended prompt tokens). `ViTParts` hides where each family keeps those parts:

    parts = vit_parts(model)          # CLIPModel, CLIPVisionModel, ViTModel, SiglipVisionModel, ...
    x = parts.embed(pixel_values)     # (B, prefix + rows*cols, width), ready for block 0
    for i in range(parts.depth):
        x = parts.run_block(i, x)
    pooled = parts.pool(x)            # what the model itself pools (CLS after its final norm, ...)

With nothing inserted, `pool(blocks(embed(x)))` is exactly the model's own pooled output (tested).
For a loaded model, callers pass the vision tower its family names (`loaded.adapter.module("vision")`);
a bare module is searched for its tower by attribute (`vision_tower` below). Adding a family means one
entry in `_FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from egokit.errors import InputError
from egokit.models.adapters.base import find_path


@dataclass(frozen=True)
class AttentionParts:
    """The frozen pieces of one block's self-attention: the pre-attention norm and q/k/v/out projections."""

    norm: nn.Module
    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    out: nn.Linear
    heads: int

    @property
    def head_dim(self) -> int:
        return self.q.out_features // self.heads


@dataclass(frozen=True)
class _Family:
    """Where one family keeps its parts: attribute paths relative to the vision model (blocks, norms)
    or to a block (attention parts). Each entry lists candidates, first match wins, so one spec covers
    the layouts of several transformers versions."""

    layers: tuple[str, ...]
    norm1: tuple[str, ...]
    norm2: tuple[str, ...]
    mlp: tuple[str, ...]
    q: tuple[str, ...]
    k: tuple[str, ...]
    v: tuple[str, ...]
    out: tuple[str, ...]
    has_cls: bool
    pool: str                               # "cls_post" (CLIP), "cls_all" (ViT), "siglip"
    final_norm: tuple[str, ...] = ("post_layernorm",)
    pre_norm: tuple[str, ...] = ()          # a norm applied to the embeddings before block 0 (CLIP)


_CLIP_LIKE = {
    "layers": ("encoder.layers",),
    "norm1": ("layer_norm1",),
    "norm2": ("layer_norm2",),
    "mlp": ("mlp",),
    "q": ("self_attn.q_proj",),
    "k": ("self_attn.k_proj",),
    "v": ("self_attn.v_proj",),
    "out": ("self_attn.out_proj",),
}
_FAMILIES: dict[str, _Family] = {
    "clip_vision_model": _Family(**_CLIP_LIKE, has_cls=True, pool="cls_post", pre_norm=("pre_layrnorm",)),
    "siglip_vision_model": _Family(**_CLIP_LIKE, has_cls=False, pool="siglip"),
    "vit": _Family(
        layers=("layers", "encoder.layer"),
        norm1=("layernorm_before",),
        norm2=("layernorm_after",),
        mlp=("mlp",),
        q=("attention.q_proj", "attention.attention.query"),
        k=("attention.k_proj", "attention.attention.key"),
        v=("attention.v_proj", "attention.attention.value"),
        out=("attention.o_proj", "attention.output.dense"),
        has_cls=True, pool="cls_all", final_norm=("layernorm",)),
}


def _get(obj: Any, paths: tuple[str, ...]) -> Any:
    found = find_path(obj, paths)
    if found is not None:
        return found[1]
    raise InputError(f"{type(obj).__name__} has none of {', '.join(paths)}: this transformers version lays the "
                     "model out differently; add the path to egokit.models.vit_parts._FAMILIES")


def vision_tower(model: nn.Module) -> nn.Module:
    """The vision transformer inside `model`: the model itself (CLIPVisionModel, ViTModel, ...), its
    `vision_model` (CLIPModel, SiglipModel, CLIPVisionModel's inner module) or its `vision_tower`."""
    for attr in ("vision_model", "vision_tower"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return vision_tower(inner)
    return model


class ViTParts:
    """Access to a frozen ViT's parts (see the module docstring). Holds references, copies nothing."""

    def __init__(self, model: nn.Module) -> None:
        tower = vision_tower(model)
        model_type = str(getattr(getattr(tower, "config", None), "model_type", ""))
        family = _FAMILIES.get(model_type)
        if family is None:
            raise InputError(f"prompt methods need a ViT-style vision model (CLIP, SigLIP or ViT), got "
                             f"{type(model).__name__} with model_type {model_type!r}; pass the vision tower "
                             "of a supported family")
        self.tower = tower
        self.family = family
        self.model_type = model_type
        cfg = tower.config
        self.width = int(cfg.hidden_size)
        self.heads = int(cfg.num_attention_heads)
        self.patch = int(cfg.patch_size)
        self.image_size = int(cfg.image_size)
        side = self.image_size // self.patch
        self.grid: tuple[int, int] = (side, side)
        self.prefix = 1 if family.has_cls else 0
        self.blocks: list[nn.Module] = list(_get(tower, family.layers))
        self.embeddings: nn.Module = tower.embeddings
        self.pre_norm: nn.Module | None = _get(tower, family.pre_norm) if family.pre_norm else None
        self.final_norm: nn.Module = _get(tower, family.final_norm)

    # -- shape ---------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def tokens(self) -> int:
        """Sequence length of the image pathway: prefix (CLS) + grid cells."""
        return self.prefix + self.grid[0] * self.grid[1]

    def parameters(self) -> list[nn.Parameter]:
        return list(self.tower.parameters())

    # -- pieces --------------------------------------------------------------------------------------
    def position_embeddings(self) -> torch.Tensor:
        """(1, tokens, width): the frozen position embeddings the image tokens get (CLS first)."""
        return self.embeddings.position_embedding.weight[None] if hasattr(self.embeddings, "position_embedding") \
            else self.embeddings.position_embeddings

    def prepare(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the model does between embeddings and block 0 (CLIP's pre-norm; nothing elsewhere)."""
        return self.pre_norm(tokens) if self.pre_norm is not None else tokens

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image tokens with position embeddings, prepared for block 0: (B, tokens, width)."""
        x = self.embeddings(pixel_values.to(self.dtype))
        if x.shape[1] != self.tokens:
            raise InputError(f"the image gave {x.shape[1]} tokens, expected {self.tokens} "
                             f"({self.grid[0]}×{self.grid[1]} grid); pass {self.image_size}×{self.image_size} images")
        return self.prepare(x)

    def run_block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Frozen block `i` on a token sequence (any length)."""
        out = self.blocks[i](x, None)
        return out[0] if isinstance(out, tuple) else out

    @property
    def pools_prefix_only(self) -> bool:
        """Whether `pool` reads only the prefix (CLS) tokens, so the last block is needed for them only."""
        return self.family.pool in ("cls_post", "cls_all") and self.prefix > 0

    def run_block_prefix(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Block `i`'s output at the prefix (CLS) positions only: (B, prefix, width). The prefix queries
        attend to the whole sequence as in `run_block`, but no other position is computed (the last block,
        when the model pools CLS, costs a fraction of a full one)."""
        att = self.attention(i)
        b, t, width = x.shape
        pre = self.prefix
        h, d = att.heads, att.head_dim
        xn = att.norm(x)
        q = att.q(xn[:, :pre]).view(b, pre, h, d).transpose(1, 2)
        k = att.k(xn).view(b, t, h, d).transpose(1, 2)
        v = att.v(xn).view(b, t, h, d).transpose(1, 2)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        y = x[:, :pre] + att.out(a.transpose(1, 2).reshape(b, pre, width))
        block = self.blocks[i]
        return y + _get(block, self.family.mlp)(_get(block, self.family.norm2)(y))

    def attention(self, i: int) -> AttentionParts:
        b, f = self.blocks[i], self.family
        return AttentionParts(_get(b, f.norm1), _get(b, f.q), _get(b, f.k), _get(b, f.v), _get(b, f.out), self.heads)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, width) pooled features of a final token sequence laid out as the image pathway."""
        if self.family.pool == "cls_post":
            return self.final_norm(x[:, 0])
        if self.family.pool == "cls_all":
            return self.final_norm(x)[:, 0]
        x = self.final_norm(x)
        head = getattr(self.tower, "head", None) if getattr(self.tower.config, "vision_use_head", True) else None
        return head(x) if head is not None else x.mean(dim=1)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.tower.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.tower.parameters()).device


def vit_parts(model: nn.Module) -> ViTParts:
    """`ViTParts` of a model or of the vision tower inside it."""
    return ViTParts(model)


def frozen(module: nn.Module) -> nn.Module:
    """Freeze every parameter of `module` and put it in eval mode (dropout off)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()

