"""The window cross-attention equals a masked full attention (borders, CLS, any grid and window)."""

from __future__ import annotations

import pytest
import torch

from egokit.errors import InputError
from egokit.methods.sa2vp.attention import (
    global_attention,
    local_attention,
    masked_attention,
    neighbour_index,
    neighbourhood_mask,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _qkv(tokens: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, tokens, 5, generator=g, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("grid,window,prefix", [((3, 4), 3, 1), ((4, 4), 3, 0), ((5, 3), 5, 1), ((2, 6), 3, 2),
                                                ((1, 1), 3, 1), ((4, 5), 1, 1)])
@pytest.mark.parametrize("impl", ["gather", "mask"])
def test_local_equals_masked_full_attention(grid, window, prefix, impl):
    q, k, v = _qkv(prefix + grid[0] * grid[1])
    local = local_attention(q, k, v, grid, window, prefix, impl=impl)
    full = masked_attention(q, k, v, neighbourhood_mask(grid, window, prefix))
    torch.testing.assert_close(local, full, rtol=0, atol=1e-12)


def test_mask_by_hand_on_a_3x3_grid():
    m = neighbourhood_mask((3, 3), 3, prefix=1)
    cells = lambda row: sorted(j - 1 for j in range(10) if row[j] and j > 0)  # noqa: E731
    assert m[0].all(), "CLS attends to every token, CLS included"
    assert cells(m[1 + 0]) == [0, 1, 3, 4]                      # top-left corner: a 2×2 square
    assert cells(m[1 + 1]) == [0, 1, 2, 3, 4, 5]                # top edge: 2×3
    assert cells(m[1 + 4]) == list(range(9))                    # centre: all nine
    assert cells(m[1 + 8]) == [4, 5, 7, 8]                      # bottom-right corner
    assert not m[1:, 0].any(), "grid tokens do not attend to CLS"
    index, valid = neighbour_index((3, 3), 3)
    assert sorted(index[0][valid[0]].tolist()) == [0, 1, 3, 4]
    assert valid.sum(1).tolist() == [4, 6, 4, 6, 9, 6, 4, 6, 4]


def test_cls_row_is_global_attention_and_a_far_key_has_no_effect():
    grid, prefix = (4, 4), 1
    q, k, v = _qkv(prefix + 16, seed=1)
    out = local_attention(q, k, v, grid, 3, prefix, impl="gather")
    torch.testing.assert_close(out[..., :1, :], global_attention(q, k, v)[..., :1, :], rtol=0, atol=1e-12)
    v2 = v.clone()
    v2[..., prefix + 15, :] += 100.0                   # bottom-right cell changes
    out2 = local_attention(q, k, v2, grid, 3, prefix, impl="gather")
    assert torch.equal(out[..., prefix + 0, :], out2[..., prefix + 0, :])   # top-left never sees it
    assert not torch.equal(out[..., prefix + 10, :], out2[..., prefix + 10, :])  # its neighbour does


def test_bad_window_and_shapes_fail_clearly():
    q, k, v = _qkv(10)
    with pytest.raises(InputError, match="odd"):
        local_attention(q, k, v, (3, 3), 2, 1)
    with pytest.raises(InputError, match="tokens"):
        local_attention(q, k, v, (3, 4), 3, 1)
