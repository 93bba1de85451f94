"""The trainable pieces LoRSU puts into a frozen vision encoder, and how they are merged back.

- `SparseDeltaLinear`: a frozen `nn.Linear` whose weight gets a trainable update on a fixed set of
  entries only (the fc1 mask). The update is a vector of the chosen entries, so the optimizer keeps state
  for those entries and nothing else; merging adds it in place, leaving every other entry bit-identical.
- `StackedLoRA` + `SharedLoRALinear`: LoRSU's masked LoRA on the attention projections, shaped as the official
  code shapes it: one rank-r update of the *stacked* q/k/v weight, ``ΔW = (α/r) · M ⊙ (A · B)`` with
  A (3·out × r) Kaiming-uniform on the output side and B (r × in) zero, so one B is shared by q, k and v.
  A model with separate q, k and v projections gets one `SharedLoRALinear` per projection, each reading its
  slice of A's rows. Only the rows the head mask keeps carry parameters (the others never get a gradient).
- `RowLoRALinear`: a frozen `nn.Linear` plus a LoRA update ``scale · M ⊙ (U · D)`` whose mask `M` keeps
  chosen output rows. With ``rows=None`` it is a plain LoRA (LoRSU's image projection). `init="official"`
  draws the random factor as the official code does (Kaiming-uniform over a tensor whose fan-in is the
  rank: bound 1/√r); `init="egokit-v1"` draws it with the layer's input width as fan-in (bound 1/√in, the
  earlier egokit variant, kept as an ablation).

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


#: how the random LoRA factor is drawn: as the official code ("official") or as egokit first did ("egokit-v1")
LORA_INITS: tuple[str, ...] = ("official", "egokit-v1")


def _check_lora(rank: int, init: str) -> None:
    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    if init not in LORA_INITS:
        raise ValueError(f"unknown LoRA initialisation {init!r}: use one of {', '.join(LORA_INITS)}")


def kaiming_factor(rows: int, cols: int, *, device: torch.device | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """A (rows × cols) tensor drawn as `nn.init.kaiming_uniform_(·, a=√5)` draws it: uniform in ±1/√cols."""
    t = torch.empty(rows, cols, device=device, dtype=dtype)
    nn.init.kaiming_uniform_(t, a=math.sqrt(5))
    return t


class StackedLoRA(nn.Module):
    """The trainable factors of one masked LoRA over `parts` stacked projections (q, k, v) of `in_features`
    inputs and `out_features` outputs each: ``ΔW_stacked = scale · M ⊙ (A · B)``.

    A is drawn for the whole stacked weight (``parts·out × rank``, Kaiming-uniform: fan-in = rank) and only the
    rows in `rows` (the same rows in every part: the chosen heads) are kept, as `a` (parts × len(rows) × rank);
    B (`b`, rank × in) starts at zero and is shared by every part. M is one on `rows` of every part.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, rows: torch.Tensor,
                 parts: int = 3, *, device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        _check_lora(rank, "official")
        self.scale = float(alpha) / float(rank)
        self.register_buffer("rows", rows.to(device=device, dtype=torch.long), persistent=False)
        a_full = kaiming_factor(parts * out_features, rank, device=device, dtype=dtype)
        self.a = nn.Parameter(a_full.view(parts, out_features, rank)[:, self.rows].contiguous())
        self.b = nn.Parameter(torch.zeros(rank, in_features, device=device, dtype=dtype))

    def part_delta(self, part: int) -> torch.Tensor:
        """``scale · A_part · B`` for the kept rows of one part (len(rows) × in)."""
        return (self.a[part] @ self.b) * self.scale

    def delta_weight(self, out_features: int) -> torch.Tensor:
        """``scale · M ⊙ (A · B)`` as the full stacked (parts·out × in) matrix."""
        parts = self.a.shape[0]
        full = torch.zeros(parts, out_features, self.b.shape[1], dtype=self.b.dtype, device=self.b.device)
        for p in range(parts):
            full[p, self.rows] = self.part_delta(p)
        return full.view(parts * out_features, -1)


class SharedLoRALinear(nn.Module):
    """`base` (frozen) plus part `part` of a `StackedLoRA` added to its output features `lora.rows`."""

    def __init__(self, base: nn.Linear, lora: StackedLoRA, part: int) -> None:
        super().__init__()
        self.base = base
        self.lora = lora
        self.part = int(part)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = F.linear(F.linear(x, self.lora.b), self.lora.a[self.part]) * self.lora.scale
        return self.base(x).index_add(-1, self.lora.rows, low)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """Add this part's update into the base weight in place and return the base layer."""
        self.base.weight.index_add_(0, self.lora.rows, self.lora.part_delta(self.part).to(self.base.weight.dtype))
        return self.base


class RowLoRALinear(nn.Module):
    """`base` (frozen) plus ``scale · (x Dᵀ) Uᵀ`` added to the output features `rows` (all if None).

    Equivalent to the weight ``W + scale · M ⊙ (U_full · D)`` with ``M`` one on `rows`. `down` (D, rank × in)
    starts random, `up` (U, len(rows) × rank) at zero, so the layer starts equal to `base`. `init` says how D is
    drawn (`LORA_INITS`): "official" as the official LoRSU code draws its projection LoRA (a Kaiming-uniform
    in × rank factor, bound 1/√rank), "egokit-v1" Kaiming-uniform over D itself (bound 1/√in).
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, rows: torch.Tensor | None = None,
                 init: str = "official") -> None:
        super().__init__()
        _check_lora(rank, init)
        self.base = base
        dev, dt = base.weight.device, base.weight.dtype
        n_rows = base.out_features if rows is None else int(rows.numel())
        if rows is None:
            self.rows: torch.Tensor | None = None
        else:
            self.register_buffer("rows", rows.to(device=dev, dtype=torch.long), persistent=False)
        self.scale = float(alpha) / float(rank)
        if init == "official":
            down = kaiming_factor(base.in_features, rank, device=dev, dtype=dt).t().contiguous()
        else:
            down = kaiming_factor(rank, base.in_features, device=dev, dtype=dt)
        self.down = nn.Parameter(down)
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


__all__ = ["LORA_INITS", "Patch", "RowLoRALinear", "SharedLoRALinear", "SparseDeltaLinear", "StackedLoRA",
           "install", "kaiming_factor", "merge_all", "remove_all"]
