"""Turning captured attention (and gradients) into one score per token.

Shapes follow `Captured.stack()`: (L, B, H, R, K) — layers, batch, heads, query rows, key columns.
Every function is plain tensor maths with no model access, so it works the same on any family.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from egokit.errors import InputError

_REDUCERS = ("mean", "max", "sum")


def _reduce(x: torch.Tensor, dims: Sequence[int], how: str) -> torch.Tensor:
    if how not in _REDUCERS:
        raise InputError(f"unknown aggregation {how!r}; choose one of {', '.join(_REDUCERS)}")
    for d in sorted(dims, reverse=True):
        x = x.amax(d) if how == "max" else (x.mean(d) if how == "mean" else x.sum(d))
    return x


def aggregate(att: torch.Tensor, layers: str = "mean", heads: str = "mean", rows: str | None = "mean"
              ) -> torch.Tensor:
    """Reduce (L, B, H, R, K) over layers, heads and (optionally) query rows → (B, K) or (B, R, K).

    Each of `layers`, `heads`, `rows` is "mean", "max" or "sum"; `rows=None` keeps the query rows.
    """
    if att.dim() != 5:
        raise InputError(f"expected attention shaped (layers, batch, heads, rows, keys), got {tuple(att.shape)}")
    x = _reduce(att, [2], heads)  # (L, B, R, K)
    x = _reduce(x, [0], layers)  # (B, R, K)
    if rows is not None:
        x = _reduce(x, [1], rows)  # (B, K)
    return x


def renormalize(scores: torch.Tensor, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    """Rescale so the scores along `dim` sum to one (e.g. attention restricted to the visual columns)."""
    return scores / scores.sum(dim, keepdim=True).clamp_min(eps)


def exclude_sinks(scores: torch.Tensor, sinks: Sequence[int] | None = None, factor: float | None = 5.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero "attention sink" columns — given positions, and/or columns over `factor` × the median.

    Returns (scores with sinks set to zero, bool mask of the excluded columns). Works on (..., K).
    """
    k = scores.shape[-1]
    excluded = torch.zeros(k, dtype=torch.bool, device=scores.device)
    if sinks is not None:
        excluded[torch.as_tensor(list(sinks), dtype=torch.long, device=scores.device)] = True
    if factor is not None:
        flat = scores.reshape(-1, k).mean(0)
        median = flat.median()
        if median > 0:
            excluded |= flat > factor * median
    return scores.masked_fill(excluded, 0.0), excluded


def gradient_attention(att: torch.Tensor, grad: torch.Tensor, signed: bool = True, layers: str = "mean"
                       ) -> torch.Tensor:
    """Gradient × attention relevance, mean over heads then layers: (L, B, H, R, K) → (B, R, K).

    signed=True keeps negative values (CLIP4DM: negative means the token lowers the score);
    signed=False is Chefer et al.'s clamped variant, mean over heads of max(∇A ⊙ A, 0).
    """
    if att.shape != grad.shape:
        raise InputError(f"attention {tuple(att.shape)} and gradient {tuple(grad.shape)} shapes differ")
    rel = grad * att
    if not signed:
        rel = rel.clamp_min(0)
    rel = rel.mean(2)  # heads
    return _reduce(rel, [0], layers)


def chefer_rule(att: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Chefer et al.'s cumulative rule over full square maps: R ← R + Ā·R with Ā = mean_h max(∇A ⊙ A, 0).

    att, grad: (L, B, H, N, N) — every row and column of each layer. Returns R (B, N, N).
    """
    _check_square(att)
    n = att.shape[-1]
    rel = torch.eye(n, dtype=att.dtype, device=att.device).expand(att.shape[1], n, n).clone()
    for layer in range(att.shape[0]):
        cam = (grad[layer] * att[layer]).clamp_min(0).mean(1)
        rel = rel + torch.bmm(cam, rel)
    return rel


def rollout(att: torch.Tensor, residual: bool = True, heads: str = "mean") -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): product of head-reduced maps with the residual added.

    att: (L, B, H, N, N) — every row and column of each layer (capture with queries=None, keys=None).
    Returns (B, N, N): how much each output position draws on each input position through all layers.
    """
    _check_square(att)
    maps = _reduce(att, [2], heads)  # (L, B, N, N)
    n = maps.shape[-1]
    eye = torch.eye(n, dtype=maps.dtype, device=maps.device)
    result = eye.expand(maps.shape[1], n, n).clone()
    for layer in range(maps.shape[0]):
        a = maps[layer]
        if residual:
            a = 0.5 * a + 0.5 * eye
            a = a / a.sum(-1, keepdim=True)
        result = torch.bmm(a, result)
    return result


def _check_square(att: torch.Tensor) -> None:
    if att.dim() != 5 or att.shape[-1] != att.shape[-2]:
        raise InputError(
            "rollout and Chefer's rule need full square maps (layers, batch, heads, N, N): capture every query "
            f"row and key column (queries=None, keys=None); got {tuple(att.shape)}"
        )
