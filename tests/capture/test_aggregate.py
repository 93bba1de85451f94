import pytest
import torch

from egokit.capture.aggregate import (
    aggregate,
    chefer_rule,
    exclude_sinks,
    gradient_attention,
    renormalize,
    rollout,
)
from egokit.errors import InputError


def test_aggregate_mean_and_max():
    att = torch.arange(2 * 1 * 3 * 2 * 4, dtype=torch.float).reshape(2, 1, 3, 2, 4)
    mean = aggregate(att)
    assert mean.shape == (1, 4)
    torch.testing.assert_close(mean, att.mean((0, 2, 3)))
    mx = aggregate(att, layers="max", heads="max", rows=None)
    assert mx.shape == (1, 2, 4)
    torch.testing.assert_close(mx, att.amax(2).amax(0))
    with pytest.raises(InputError):
        aggregate(att, heads="median")
    with pytest.raises(InputError):
        aggregate(att[0])


def test_renormalize_and_sinks():
    s = torch.tensor([[1.0, 1.0, 2.0, 100.0]])
    r = renormalize(s)
    torch.testing.assert_close(r.sum(-1), torch.ones(1))
    cleaned, excluded = exclude_sinks(s, factor=5.0)
    assert excluded.tolist() == [False, False, False, True] and cleaned[0, 3] == 0
    cleaned, excluded = exclude_sinks(s, sinks=[0], factor=None)
    assert excluded.tolist() == [True, False, False, False]


def test_gradient_attention_signed_vs_clamped():
    att = torch.rand(2, 1, 2, 1, 3)
    grad = torch.tensor([-1.0, 1.0, 0.5]).expand(2, 1, 2, 1, 3)
    signed = gradient_attention(att, grad)
    clamped = gradient_attention(att, grad, signed=False)
    assert (signed[..., 0] < 0).all() and (clamped[..., 0] == 0).all()
    torch.testing.assert_close(signed[..., 1:], clamped[..., 1:])
    torch.testing.assert_close(signed, (att * grad).mean(2).mean(0))


def test_rollout_identity_and_rows_sum_to_one():
    n = 5
    eye = torch.eye(n).expand(3, 1, 2, n, n)
    torch.testing.assert_close(rollout(eye)[0], torch.eye(n))
    att = torch.softmax(torch.randn(3, 2, 4, n, n), -1)
    r = rollout(att)
    torch.testing.assert_close(r.sum(-1), torch.ones(2, n))
    # one layer, no residual: rollout is the head-mean map itself
    torch.testing.assert_close(rollout(att[:1], residual=False), att[0].mean(1))
    with pytest.raises(InputError, match="square"):
        rollout(att[..., :3])


def test_chefer_rule_one_layer():
    att = torch.softmax(torch.randn(1, 1, 2, 4, 4), -1)
    grad = torch.randn(1, 1, 2, 4, 4)
    cam = (grad[0] * att[0]).clamp_min(0).mean(1)
    torch.testing.assert_close(chefer_rule(att, grad), torch.eye(4) + cam)
