"""Which visual tokens a memory keeps: budgets and the selection rules (Ego and its baselines).

Every rule returns token indices into one view's layout (`ImageTokens` order, raster order for a plain
grid), sorted ascending so the memory keeps the image's raster order.

- `ego`:       the top-K tokens by keyword→visual attention score;
- `uniform`:   K evenly spaced tokens;
- `random`:    K tokens drawn at random (seeded);
- `oracle`:    the K tokens whose pixel boxes overlap the ground-truth mask most (an upper bound);
- `all`:       every token (whole-image memory);
- `keywords`:  no token at all (a text memory of the description's keywords).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch

from egokit.errors import InputError

SELECTIONS: tuple[str, ...] = ("ego", "uniform", "random", "oracle", "all", "keywords")


def budget_k(budget: int | float, n: int) -> int:
    """Tokens to keep out of `n`: an int is a count (capped at n); a float in (0, 1] a share of n."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise InputError(f"budget must be a token count (int) or a share of the tokens in (0, 1], got {budget!r}")
    if isinstance(budget, (int, np.integer)):
        if budget < 1:
            raise InputError(f"a token budget must be at least 1, got {budget}")
        return int(min(int(budget), n))
    if not 0.0 < float(budget) <= 1.0:
        raise InputError(f"a budget share must be in (0, 1], got {budget}; pass an int for a token count")
    return max(1, min(n, int(round(float(budget) * n))))


def coverage_k(answer: str, n: int, cap: int) -> int | None:
    """The dynamic budget: K = min(cap, ceil(α·n/100)) for the first number α in the model's coverage
    answer; None when the answer holds no number."""
    found = re.search(r"\d+(?:\.\d+)?", answer or "")
    if found is None:
        return None
    alpha = min(100.0, max(0.0, float(found.group())))
    return max(1, min(cap, math.ceil(alpha * n / 100.0)))


def top_k_raster(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores (ties: lower index first), in ascending (raster) order."""
    s = scores.detach().float().cpu()
    order = sorted(range(s.numel()), key=lambda j: (-float(s[j]), j))
    return torch.tensor(sorted(order[:k]), dtype=torch.long)


def uniform_k(n: int, k: int) -> torch.Tensor:
    """k evenly spaced indices out of n (the centre of each of k equal runs), ascending."""
    idx = np.floor((np.arange(k) + 0.5) * n / k).astype(np.int64)
    return torch.as_tensor(np.unique(np.clip(idx, 0, n - 1)), dtype=torch.long)


def random_k(n: int, k: int, seed: int | np.random.Generator = 0) -> torch.Tensor:
    """k distinct random indices out of n, ascending."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return torch.as_tensor(np.sort(rng.choice(n, size=k, replace=False)), dtype=torch.long)


def mask_coverage(mask: Any, boxes: torch.Tensor) -> torch.Tensor:
    """Share (0–1) of each token's pixel box covered by a boolean (H, W) mask, (N,) float."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise InputError(f"a mask must be a (height, width) boolean array, got shape {m.shape}")
    h, w = m.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = m.cumsum(0).cumsum(1)
    out = []
    for x0, y0, x1, y1 in boxes.detach().cpu().round().long().tolist():
        x0, x1 = max(0, min(w, x0)), max(0, min(w, x1))
        y0, y1 = max(0, min(h, y0)), max(0, min(h, y1))
        area = (x1 - x0) * (y1 - y0)
        if area <= 0:
            out.append(0.0)
            continue
        inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        out.append(float(inside) / area)
    return torch.tensor(out, dtype=torch.float32)


def precision_inside(selected: torch.Tensor, coverage: torch.Tensor, cover: float | None = None) -> float:
    """How much of the selected tokens lies inside the mask.

    Default (`cover=None`): the share of the selected tokens' pixels that are mask, i.e. the mean mask
    coverage of their patches — threshold-free, 1.0 only when every kept patch is all object. With a
    `cover` in (0, 1]: the share of selected tokens whose patch is at least that much mask."""
    if selected.numel() == 0:
        return float("nan")
    values = coverage[selected]
    if cover is None:
        return float(values.float().mean())
    return float((values >= cover).float().mean())


def select(rule: str, n: int, k: int, scores: torch.Tensor | None = None, coverage: torch.Tensor | None = None,
           seed: int | np.random.Generator = 0) -> torch.Tensor:
    """Token indices kept by `rule` (one of `SELECTIONS`) out of n tokens with budget k."""
    if rule == "ego":
        if scores is None:
            raise InputError("Ego selection needs attention scores")
        return top_k_raster(scores, k)
    if rule == "uniform":
        return uniform_k(n, k)
    if rule == "random":
        return random_k(n, k, seed)
    if rule == "oracle":
        if coverage is None:
            raise InputError("the oracle selection needs the ground-truth mask of each reference view: pass masks=")
        return top_k_raster(coverage, k)
    if rule == "all":
        return torch.arange(n)
    if rule == "keywords":
        return torch.zeros(0, dtype=torch.long)
    raise InputError(f"unknown selection {rule!r}; choose one of {', '.join(SELECTIONS)}")


__all__ = [
    "SELECTIONS",
    "budget_k",
    "coverage_k",
    "mask_coverage",
    "precision_inside",
    "random_k",
    "select",
    "top_k_raster",
    "uniform_k",
]
