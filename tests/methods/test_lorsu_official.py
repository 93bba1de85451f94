"""LoRSU's masked LoRA follows the official code's shape and initialisation (`MaskedLoRAParametrization` on the
stacked q/k/v weight): ΔW = (α/r)·M ⊙ (A·B) with A (3·D × r) Kaiming-uniform on the output side (fan-in r, so
|A| ≤ 1/√r) and B (r × D) zero and shared by q, k and v; the projection LoRA's random factor has fan-in r; fc1's
bias trains densely. The earlier egokit variant stays reachable as `lora_init="egokit-v1"` (the `lora_v1`
ablation) and differs where it should."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import egokit.methods.lorsu.session as lorsu
from egokit.errors import InputError
from egokit.methods.lorsu.baselines import METHODS
from egokit.methods.lorsu.evaluation import ABLATIONS, Settings
from egokit.methods.lorsu.modules import RowLoRALinear, SharedLoRALinear, StackedLoRA, install, merge_all

HEADS = 4


pytestmark = pytest.mark.usefixtures("one_thread")


def test_stacked_lora_draws_a_as_the_official_code_and_keeps_the_chosen_rows():
    d, r, rows = 16, 4, torch.tensor([4, 5, 6, 7])
    torch.manual_seed(3)
    lora = StackedLoRA(d, d, r, alpha=8.0, rows=rows)
    torch.manual_seed(3)  # the official draw: one Kaiming-uniform (3·D × r) tensor
    a_ref = torch.empty(3 * d, r)
    nn.init.kaiming_uniform_(a_ref, a=math.sqrt(5))
    assert lora.a.shape == (3, len(rows), r) and lora.b.shape == (r, d)
    assert torch.equal(lora.a, a_ref.view(3, d, r)[:, rows])
    assert torch.count_nonzero(lora.b) == 0
    assert lora.scale == 8.0 / r
    # the initial scale is the official one: uniform in ±1/√r (fan-in = rank), not ±1/√D
    assert float(lora.a.detach().abs().max()) <= 1 / math.sqrt(r)
    assert float(lora.a.detach().abs().max()) > 0.8 / math.sqrt(r)


def test_shared_lora_equals_the_masked_product_of_the_stacked_weight():
    d, r = 16, 4
    rows = torch.tensor([0, 1, 2, 3, 12, 13, 14, 15])  # heads 0 and 3 of 4
    g = torch.Generator().manual_seed(0)
    bases = [nn.Linear(d, d) for _ in range(3)]
    lora = StackedLoRA(d, d, r, alpha=2.0, rows=rows)
    with torch.no_grad():
        lora.b.copy_(torch.randn(r, d, generator=g))  # as if trained
    wrappers = [SharedLoRALinear(b, lora, part) for part, b in enumerate(bases)]
    # the official rule on the stacked weight, with any values in A's rows the mask drops
    a_full = torch.randn(3, d, r, generator=g)
    a_full[:, rows] = lora.a.detach()
    mask = torch.zeros(3, d, d)
    mask[:, rows] = 1.0
    official = (2.0 / r) * mask.view(3 * d, d) * (a_full.view(3 * d, r) @ lora.b.detach())
    assert torch.allclose(lora.delta_weight(d), official, atol=1e-6)
    x = torch.randn(5, d, generator=g)
    for part, (w, b) in enumerate(zip(wrappers, bases)):
        expect = F.linear(x, b.weight + official[part * d:(part + 1) * d], b.bias)
        assert torch.allclose(w(x), expect, atol=1e-5)
    # one B for q, k and v: each projection's gradient reaches the same tensor
    assert wrappers[0].lora.b is wrappers[1].lora.b is wrappers[2].lora.b
    for w in wrappers:
        lora.b.grad = None
        w(x).sum().backward()
        assert lora.b.grad is not None and torch.count_nonzero(lora.b.grad) > 0
    # merging adds exactly the masked product, part by part
    root = nn.Module()
    for i, b in enumerate(bases):
        setattr(root, f"p{i}", b)
    before = torch.cat([b.weight.detach().clone() for b in bases])
    patches = [install(root, f"p{i}", SharedLoRALinear(b, lora, i)) for i, b in enumerate(bases)]
    merge_all(patches)
    after = torch.cat([getattr(root, f"p{i}").weight.detach() for i in range(3)])
    assert torch.allclose(after - before, official, atol=1e-6)


def test_projection_lora_random_factor_has_fan_in_rank_officially_and_input_width_in_v1():
    base = nn.Linear(256, 32)
    official = RowLoRALinear(base, rank=4, alpha=4.0)
    v1 = RowLoRALinear(base, rank=4, alpha=4.0, init="egokit-v1")
    assert official.down.shape == v1.down.shape == (4, 256)
    assert 0.4 < float(official.down.detach().abs().max()) <= 1 / math.sqrt(4)
    assert float(v1.down.detach().abs().max()) <= 1 / math.sqrt(256)
    with pytest.raises(ValueError, match="initialisation"):
        RowLoRALinear(base, rank=4, alpha=4.0, init="kaiming")


def _qkv_delta(before, after, block):
    pre = f"vision_model.encoder.layers.{block}.self_attn."
    return torch.cat([after[pre + f"{p}_proj.weight"] - before[pre + f"{p}_proj.weight"] for p in "qkv"])


@pytest.mark.parametrize("lora_init, rank_bound", [("official", True), ("egokit-v1", False)])
def test_the_stacked_qkv_update_has_rank_at_most_r_only_with_the_shared_b(lorsu_clip, lorsu_session, lora_init,
                                                                          rank_bound):
    model = copy.deepcopy(lorsu_clip[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rank = 2
    report = lorsu.update(model, lorsu_session, top_heads=1, rank=rank, alpha=2.0, epochs=3, lr=1e-2,
                          lora_init=lora_init)
    after = model.state_dict()
    for i in range(len(model.vision_model.encoder.layers)):
        delta = _qkv_delta(before, after, i)
        assert float(delta.abs().max()) > 0
        got = int(torch.linalg.matrix_rank(delta.double(), rtol=1e-6))
        assert (got <= rank) if rank_bound else (got > rank), (i, got)
        fc1_bias = f"vision_model.encoder.layers.{i}.mlp.fc1.bias"
        assert torch.equal(before[fc1_bias], after[fc1_bias]) == (lora_init == "egokit-v1")
    assert report.settings["lora_init"] == lora_init
    assert report.method == ("lorsu" if lora_init == "official" else "lora_v1")


def test_trainable_parameters_count_what_the_optimizer_holds(lorsu_clip, lorsu_session):
    model = copy.deepcopy(lorsu_clip[0])
    blocks = model.vision_model.encoder.layers
    d = blocks[0].self_attn.q_proj.in_features
    ffn = blocks[0].mlp.fc1.out_features
    proj = model.visual_projection
    rank, heads = 4, 2
    rows = heads * d // HEADS
    report = lorsu.update(model, lorsu_session, top_heads=heads, rank=rank, alpha=4.0, epochs=1, lr=1e-3)
    per_block = 3 * rows * rank + rank * d + 3 * d + ffn  # A rows kept, shared B, q/k/v biases, fc1 bias
    expect = sum(report.fc1_chosen) + len(blocks) * per_block + rank * (proj.in_features + proj.out_features)
    assert report.trainable_params == expect
    v1 = lorsu.update(copy.deepcopy(lorsu_clip[0]), lorsu_session, top_heads=heads, rank=rank, alpha=4.0, epochs=1,
                      lr=1e-3,
                      lora_init="egokit-v1")
    per_block_v1 = 3 * (rank * d + rows * rank) + 3 * d
    assert v1.trainable_params == sum(v1.fc1_chosen) + len(blocks) * per_block_v1 + rank * (
        proj.in_features + proj.out_features)


def test_the_earlier_variant_is_an_ablation_of_the_protocol(lorsu_clip, lorsu_session):
    assert "lora_v1" in ABLATIONS and "lora_v1" in METHODS
    kw = Settings().method_kwargs("lora_v1")
    assert {"rank", "alpha", "top_heads", "sparsity"} <= set(kw)
    with pytest.raises(InputError, match="lora_init"):
        lorsu.update(copy.deepcopy(lorsu_clip[0]), lorsu_session, lora_init="kaiming")


def test_the_official_pairwise_loss_treats_other_pairs_as_negatives(lorsu_clip, lorsu_session):
    from egokit.methods.lorsu.training import class_embeddings, contrastive_loss, image_embeddings

    clip = lorsu_clip[0]
    text = class_embeddings(clip, lorsu_session)
    pixels, labels = lorsu_session.pixel_values[:6], lorsu_session.labels[:6]
    with torch.no_grad():
        got = contrastive_loss(clip, pixels, labels, text, loss="pairs")
        img = image_embeddings(clip, pixels)
        logits = clip.logit_scale.exp().clamp(max=100.0) * img @ text[labels].t()
        target = torch.arange(6)
        expect = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        classes = contrastive_loss(clip, pixels, labels, text)
    assert torch.allclose(got, expect, atol=1e-6)
    assert not torch.allclose(got, classes)  # the two losses differ (same-class pairs are negatives here)
    with pytest.raises(InputError, match="loss"):
        contrastive_loss(clip, pixels, labels, text, loss="triplet")


def test_weight_decay_switches_to_adamw_and_settings_reach_the_method(lorsu_clip, lorsu_session, monkeypatch):
    made = []
    real = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW", lambda *a, **k: made.append(k) or real(*a, **k))
    report = lorsu.update(copy.deepcopy(lorsu_clip[0]), lorsu_session, top_heads=1, rank=2, epochs=1, lr=1e-3,
                          weight_decay=0.01, loss="pairs")
    assert made == [{"lr": 1e-3, "weight_decay": 0.01}]
    assert report.settings["loss"] == "pairs" and report.settings["weight_decay"] == 0.01
    kw = Settings(method_options={"lorsu": {"loss": "pairs"}}).method_kwargs("lorsu")
    assert kw["loss"] == "pairs" and "loss" not in Settings().method_kwargs("lorsu")
