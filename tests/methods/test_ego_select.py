"""Budgets and token-selection rules of Ego and its baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egokit.errors import InputError
from egokit.methods.ego.select import (
    budget_k,
    coverage_k,
    mask_coverage,
    precision_inside,
    random_k,
    select,
    top_k_raster,
    uniform_k,
)


def test_budget_count_and_share() -> None:
    assert budget_k(0.2, 64) == 13
    assert budget_k(13, 64) == 13
    assert budget_k(100, 64) == 64
    assert budget_k(0.001, 64) == 1
    assert budget_k(1.0, 16) == 16
    for bad in (0, -1, 0.0, 1.5, True, "0.2"):
        with pytest.raises(InputError):
            budget_k(bad, 64)


def test_coverage_budget_is_capped() -> None:
    assert coverage_k("20", 64, cap=13) == 13
    assert coverage_k("10", 64, cap=13) == 7
    assert coverage_k("about 5 percent", 64, cap=13) == 4
    assert coverage_k("no idea", 64, cap=13) is None


def test_top_k_keeps_raster_order_and_breaks_ties_low_first() -> None:
    scores = torch.tensor([0.1, 0.9, 0.5, 0.9, 0.0])
    assert top_k_raster(scores, 2).tolist() == [1, 3]
    assert top_k_raster(scores, 3).tolist() == [1, 2, 3]
    assert top_k_raster(torch.zeros(4), 2).tolist() == [0, 1]


def test_uniform_and_random() -> None:
    u = uniform_k(64, 13)
    assert u.numel() == 13 and torch.all(u[1:] > u[:-1])
    assert uniform_k(64, 64).tolist() == list(range(64))
    r = random_k(64, 13, seed=3)
    assert r.numel() == 13 and torch.all(r[1:] > r[:-1])
    assert torch.equal(r, random_k(64, 13, seed=3))


def test_mask_coverage_and_precision() -> None:
    mask = np.zeros((16, 16), dtype=bool)
    mask[0:8, 0:8] = True
    mask[8:12, 8:16] = True
    boxes = torch.tensor([[0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16], [8, 8, 16, 16]], dtype=torch.float32)
    cov = mask_coverage(mask, boxes)
    assert cov.tolist() == [1.0, 0.0, 0.0, 0.5]
    assert precision_inside(torch.tensor([0, 3]), cov) == 0.75
    assert precision_inside(torch.tensor([0, 3]), cov, cover=0.5) == 1.0
    assert precision_inside(torch.tensor([0, 1]), cov, cover=0.5) == 0.5


def test_select_rules() -> None:
    scores = torch.arange(10, dtype=torch.float32)
    assert select("ego", 10, 3, scores=scores).tolist() == [7, 8, 9]
    assert select("all", 10, 3).tolist() == list(range(10))
    assert select("keywords", 10, 3).numel() == 0
    assert select("oracle", 10, 2, coverage=scores.flip(0)).tolist() == [0, 1]
    with pytest.raises(InputError):
        select("oracle", 10, 2)
    with pytest.raises(InputError):
        select("best", 10, 2)
