"""The trainable pieces LoRSU puts into a frozen vision encoder, and how they are merged back.

- `SparseDeltaLinear`: a frozen `nn.Linear` whose weight gets a trainable update on a fixed set of
  entries only (the fc1 mask). The update is a vector of the chosen entries, so the optimizer keeps state
  for those entries and nothing else; merging adds it in place, leaving every other entry bit-identical.
- `RowLoRALinear`: a frozen `nn.Linear` plus a LoRA update ``scale · M ⊙ (U · D)`` whose mask `M` keeps
  chosen output rows (the rows of the chosen attention heads). Only the rows that can change carry
  parameters: `up` has one row per kept output row. With ``rows=None`` it is a plain LoRA.

`Patch` records where a wrapper was put so that `merge_all` can put the (updated) original layer back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class SparseDeltaLinear(nn.Module):
    """`base` (frozen) with ``weight.view(-1)[index] += delta`` (`delta` trainable, starts at zero)."""

    def __init__(self, base: nn.Linear, index: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("index", index.to(device=base.weight.device, dtype=torch.long), persistent=False)
        self.delta = nn.Parameter(torch.zeros(index.numel(), device=base.weight.device, dtype=base.weight.dtype))

    def weight_now(self) -> torch.Tensor:
        """The effective weight (a new tensor; the base weight is not touched)."""
        w = self.base.weight
        return w.reshape(-1).index_add(0, self.index, self.delta).view_as(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_now(), self.base.bias)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """Add the update into the base weight in place and return the base layer."""
        self.base.weight.view(-1).index_add_(0, self.index, self.delta.to(self.base.weight.dtype))
        return self.base


class RowLoRALinear(nn.Module):
    """`base` (frozen) plus ``scale · (x Dᵀ) Uᵀ`` added to the output features `rows` (all if None).

    Equivalent to the weight ``W + scale · M ⊙ (U_full · D)`` with ``M`` one on `rows`. `down` (D, rank × in)
    starts Kaiming-uniform, `up` (U, len(rows) × rank) at zero, so the layer starts equal to `base`.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, rows: torch.Tensor | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.base = base
        dev, dt = base.weight.device, base.weight.dtype
        n_rows = base.out_features if rows is None else int(rows.numel())
        if rows is None:
            self.rows: torch.Tensor | None = None
        else:
            self.register_buffer("rows", rows.to(device=dev, dtype=torch.long), persistent=False)
        self.scale = float(alpha) / float(rank)
        self.down = nn.Parameter(torch.empty(rank, base.in_features, device=dev, dtype=dt))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
        self.up = nn.Parameter(torch.zeros(n_rows, rank, device=dev, dtype=dt))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        low = F.linear(F.linear(x, self.down), self.up) * self.scale
        if self.rows is None:
            return out + low
        return out.index_add(-1, self.rows, low)

    def delta_weight(self) -> torch.Tensor:
        """``scale · M ⊙ (U · D)`` as a full (out × in) matrix."""
        d = (self.up @ self.down) * self.scale
        if self.rows is None:
            return d
        full = torch.zeros_like(self.base.weight)
        return full.index_copy(0, self.rows, d.to(full.dtype))

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """Add the LoRA update into the base weight in place and return the base layer."""
        if self.rows is None:
            self.base.weight.add_(self.delta_weight().to(self.base.weight.dtype))
        else:
            d = (self.up @ self.down) * self.scale
            self.base.weight.index_add_(0, self.rows, d.to(self.base.weight.dtype))
        return self.base


@dataclass
class Patch:
    """A wrapper installed at `parent.<name>` in place of an `nn.Linear`."""

    parent: nn.Module
    name: str
    wrapper: nn.Module


def install(root: nn.Module, name: str, wrapper: nn.Module) -> Patch:
    """Put `wrapper` at `root.<name>` and return the record needed to merge it back. `name` may be dotted,
    as `root.named_modules()` spells it (the model's family gives such names)."""
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, wrapper)
    return Patch(parent, attr, wrapper)


def merge_all(patches: list[Patch]) -> None:
    """Merge every wrapper into its base layer and put the base layer back, last installed first."""
    for p in reversed(patches):
        setattr(p.parent, p.name, p.wrapper.merge())  # type: ignore[operator]
    patches.clear()


def remove_all(patches: list[Patch]) -> None:
    """Put the base layers back without merging (the updates are dropped)."""
    for p in reversed(patches):
        setattr(p.parent, p.name, p.wrapper.base)  # type: ignore[union-attr]
    patches.clear()


__all__ = ["Patch", "RowLoRALinear", "SparseDeltaLinear", "install", "merge_all", "remove_all"]
