"""Spatially aligned cross-attention between two token maps on the same patch grid.

Tokens are laid out as `prefix` global tokens (CLS) followed by a row-major `rows × cols` grid. In the
*local* form, a grid token at (r, c) attends only to the grid tokens of the other map inside the
`window × window` square centred on (r, c); squares are cut at the border (a corner token sees 2×2 cells
for window 3), never wrapped or padded with zeros. Prefix tokens attend globally (every token, prefix
included). The *global* form lets every token attend to every token.

`local_attention` gathers each token's neighbourhood (memory grows with tokens × window², not tokens²);
`masked_attention` with `neighbourhood_mask` is the same thing written as a masked full attention. The
tests check that the two agree exactly.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from egokit.errors import InputError


def _check(grid: tuple[int, int], window: int) -> tuple[int, int, int]:
    rows, cols = (int(v) for v in grid)
    if rows <= 0 or cols <= 0:
        raise InputError(f"the grid needs positive rows and cols, got {grid}")
    if window < 1 or window % 2 == 0:
        raise InputError(f"window must be a positive odd number (3 for 3×3), got {window}")
    return rows, cols, window // 2


def neighbour_index(grid: tuple[int, int], window: int = 3,
                    device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each grid cell (row-major), the grid indices of its window×window neighbourhood.

    Returns `(index, valid)`, both (rows*cols, window²): `index[i, j]` is a cell index (0 where the
    neighbour falls off the grid) and `valid[i, j]` says whether that neighbour exists.
    """
    rows, cols, half = _check(grid, window)
    r = torch.arange(rows, device=device).repeat_interleave(cols)
    c = torch.arange(cols, device=device).repeat(rows)
    offsets = torch.arange(-half, half + 1, device=device)
    dr = offsets.repeat_interleave(window)
    dc = offsets.repeat(window)
    nr = r[:, None] + dr[None, :]
    nc = c[:, None] + dc[None, :]
    valid = (nr >= 0) & (nr < rows) & (nc >= 0) & (nc < cols)
    index = torch.where(valid, nr * cols + nc, torch.zeros_like(nr))
    return index, valid


def neighbourhood_mask(grid: tuple[int, int], window: int = 3, prefix: int = 1,
                       device: torch.device | None = None) -> torch.Tensor:
    """(T, T) boolean mask, T = prefix + rows*cols: True where query token i may attend to key token j.

    Prefix queries see every key; grid queries see the grid keys in their window (not the prefix)."""
    rows, cols, half = _check(grid, window)
    n = rows * cols
    r = torch.arange(rows, device=device).repeat_interleave(cols)
    c = torch.arange(cols, device=device).repeat(rows)
    near = ((r[:, None] - r[None, :]).abs() <= half) & ((c[:, None] - c[None, :]).abs() <= half)
    mask = torch.zeros(prefix + n, prefix + n, dtype=torch.bool, device=device)
    mask[:prefix] = True
    mask[prefix:, prefix:] = near
    return mask


@lru_cache(maxsize=16)
def _mask_bias(rows: int, cols: int, window: int, prefix: int, device: str) -> torch.Tensor:
    """`neighbourhood_mask` as an additive bias (0 allowed, -inf not), cached per grid."""
    mask = neighbourhood_mask((rows, cols), window, prefix, device=torch.device(device))
    return torch.zeros(mask.shape, device=mask.device).masked_fill(~mask, float("-inf"))


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                     scale: float | None = None) -> torch.Tensor:
    """Softmax attention of q (…, Tq, d) over k, v (…, Tk, d), with an optional boolean (Tq, Tk) mask."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int],
                    window: int = 3, prefix: int = 1, scale: float | None = None, impl: str = "auto") -> torch.Tensor:
    """Window attention of q over k, v; all three (B, heads, prefix + rows*cols, d).

    Prefix queries attend globally; grid queries attend to the window×window grid neighbourhood of their
    own position (see the module docstring). Returns (B, heads, T, d).

    impl: "gather" (each query's neighbourhood gathered: memory ∝ tokens·window²), "mask" (a masked full
    attention through the fused kernel: faster for small grids) or "auto" ("mask" up to 1,024 tokens)."""
    rows, cols, _ = _check(grid, window)
    if impl not in ("auto", "gather", "mask"):
        raise InputError(f"impl must be 'auto', 'gather' or 'mask', got {impl!r}")
    n = rows * cols
    if q.shape[-2] != prefix + n or k.shape[-2] != prefix + n:
        raise InputError(f"expected {prefix} + {rows}×{cols} tokens, got queries {q.shape[-2]} and keys {k.shape[-2]}")
    if impl == "mask" or (impl == "auto" and prefix + rows * cols <= 1024):
        bias = _mask_bias(rows, cols, window, prefix, str(q.device)).to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    index, valid = neighbour_index(grid, window, device=q.device)
    kg, vg = k[..., prefix:, :], v[..., prefix:, :]
    k_nb = kg[..., index, :]                                    # (B, h, n, w², d)
    v_nb = vg[..., index, :]
    scores = (q[..., prefix:, None, :] * k_nb).sum(-1) * scale  # (B, h, n, w²)
    scores = scores.masked_fill(~valid, float("-inf"))
    out_grid = (scores.softmax(dim=-1)[..., None] * v_nb).sum(-2)
    if prefix == 0:
        return out_grid
    out_prefix = F.scaled_dot_product_attention(q[..., :prefix, :], k, v, scale=scale)
    return torch.cat([out_prefix, out_grid], dim=-2)


def global_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Every query attends to every key (the ablation of the local window)."""
    return F.scaled_dot_product_attention(q, k, v, scale=scale)
