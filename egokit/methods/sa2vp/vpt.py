"""Baselines on the same frozen backbone as SA²VP: VPT-shallow, VPT-deep and a linear probe.

VPT (Jia et al., ECCV 2022) prepends `length` learned tokens to the sequence, right after CLS:
VPT-shallow only before block 0, VPT-deep a fresh set before every block (the previous block's outputs
at those positions are dropped). Prompt tokens are initialised uniformly in ±sqrt(6 / (3·patch² + width)),
as in the paper, and removed before pooling. The linear probe trains a head on the frozen pooled
features (which can therefore be computed once: `cacheable = True`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from egokit.errors import InputError
from egokit.models.vit_parts import ViTParts, frozen, vit_parts


def _run(parts: ViTParts, i: int, x: torch.Tensor) -> torch.Tensor:
    """Block i; the last one for the prefix (CLS) only when that is all the pooling reads."""
    if i == parts.depth - 1 and parts.pools_prefix_only:
        return parts.run_block_prefix(i, x)
    return parts.run_block(i, x)


class _FrozenHead(nn.Module):
    """A frozen backbone plus a trainable linear head (shared by the baselines). `tower` is the same
    ViT-style vision tower `SA2VP` takes (its parameters are frozen in place)."""

    cacheable = False

    def __init__(self, tower: nn.Module, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise InputError(f"need num_classes >= 2, got {num_classes}")
        self.parts: ViTParts = vit_parts(tower)
        self.backbone = frozen(self.parts.tower)
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.parts.width, num_classes)

    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> _FrozenHead:
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def loss(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(pixel_values), labels)

    @torch.no_grad()
    def predict_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self(pixel_values)


class VPT(_FrozenHead):
    """Visual prompt tuning: `length` prompt tokens after CLS, at block 0 only (shallow) or every block (deep)."""

    def __init__(self, tower: nn.Module, num_classes: int, length: int = 8, deep: bool = True) -> None:
        super().__init__(tower, num_classes)
        if length < 1:
            raise InputError(f"VPT needs at least one prompt token, got length={length}")
        self.length, self.deep = int(length), bool(deep)
        width = self.parts.width
        bound = math.sqrt(6.0 / (3 * self.parts.patch ** 2 + width))
        n_sets = self.parts.depth if deep else 1
        self.prompts = nn.Parameter(torch.empty(n_sets, length, width).uniform_(-bound, bound))
        self.to(device=self.parts.device, dtype=self.parts.dtype)

    @property
    def name(self) -> str:
        return "vpt_deep" if self.deep else "vpt_shallow"

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        parts = self.parts
        x = parts.embed(pixel_values)
        b, pre, n = x.shape[0], parts.prefix, self.length
        x = torch.cat([x[:, :pre], self.prompts[0].expand(b, -1, -1), x[:, pre:]], dim=1)
        for i in range(parts.depth):
            if self.deep and i > 0:
                x = torch.cat([x[:, :pre], self.prompts[i].expand(b, -1, -1), x[:, pre + n:]], dim=1)
            x = _run(parts, i, x)
        x = torch.cat([x[:, :pre], x[:, pre + n:]], dim=1)  # prompts are not pooled
        return self.head(parts.pool(x))


def vpt_param_count(width: int, depth: int, length: int, num_classes: int, deep: bool = True) -> int:
    """Trainable parameters of `VPT`: (depth if deep else 1)·length·width + head (width·classes + classes)."""
    return (depth if deep else 1) * length * width + width * num_classes + num_classes


def matching_vpt_length(target_params: int, width: int, depth: int, num_classes: int) -> int:
    """The VPT-deep prompt length whose trainable parameter count is closest to `target_params`
    (at least 1)."""
    head = width * num_classes + num_classes
    return max(1, round((target_params - head) / (depth * width)))


class LinearProbe(_FrozenHead):
    """A linear head on the frozen pooled features."""

    cacheable = True
    name = "linear"

    def __init__(self, tower: nn.Module, num_classes: int) -> None:
        super().__init__(tower, num_classes)
        self.to(device=self.parts.device, dtype=self.parts.dtype)

    @torch.no_grad()
    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled frozen features (B, width): they never change, so they can be computed once."""
        x = self.parts.embed(pixel_values)
        for i in range(self.parts.depth):
            x = _run(self.parts, i, x)
        return self.parts.pool(x)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixel_values))
