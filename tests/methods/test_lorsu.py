"""egokit.methods.lorsu.session on a tiny random CLIP (4 vision heads): exact masks, frozen parts bit-identical,
merging LoRA keeps outputs, the head mask only touches the chosen heads' rows, the baselines only train
what they claim to, the parts are found through the model's family (a family without a dual encoder is
refused; the LoRA baseline adapts the modules it always did), and a session report is a `Result`."""

from __future__ import annotations

import copy
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import egokit.methods.lorsu.session as lorsu
from egokit.errors import CapabilityError, InputError
from egokit.methods.lorsu.baselines import METHODS, lora_targets
from egokit.methods.lorsu.modules import RowLoRALinear, SparseDeltaLinear, install, merge_all
from egokit.methods.lorsu.session import SessionReport
from egokit.methods.lorsu.training import image_embeddings
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

#: the module-name pattern the LoRA baseline used before its targets came from the family
OLD_LORA_PATTERN = (r".*vision_model\.encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2))"
                    r"|visual_projection")


pytestmark = pytest.mark.usefixtures("one_thread")
HEADS = 4


@pytest.fixture(scope="module")
def tiny(lorsu_clip):
    return lorsu_clip


@pytest.fixture(scope="module")
def data(lorsu_session):
    return lorsu_session


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("shape", [(64, 32), (7, 13), (128,)])
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.25, 1.0])
def test_top_fraction_mask_keeps_exactly_the_requested_fraction(shape, fraction):
    scores = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    mask = lorsu.top_fraction_mask(scores, fraction)
    n = scores.numel()
    assert mask.shape == scores.shape and mask.dtype == torch.bool
    assert int(mask.sum()) == max(1, round(fraction * n))
    if fraction < 1.0:  # every kept |score| is at least every dropped one
        assert scores.abs()[mask].min() >= scores.abs()[~mask].max()


def test_mask_rejects_bad_fractions():
    with pytest.raises(Exception, match="sparsity"):
        lorsu.top_fraction_mask(torch.ones(4), 0.0)


def test_head_scores_follow_the_definition():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(32, 16, generator=g) for _ in range(3))
    scores = lorsu.head_scores(q, k, v, n_heads=4)
    manual = [sum(float(m[h * 8:(h + 1) * 8].square().sum()) for m in (q, k, v)) for h in range(4)]
    assert torch.allclose(scores, torch.tensor(manual), rtol=1e-5)
    assert lorsu.choose_heads(scores, 2) == sorted(torch.topk(scores, 2).indices.tolist())
    assert lorsu.head_rows([1, 3], 8).tolist() == list(range(8, 16)) + list(range(24, 32))


def test_session_masks_keep_exact_fraction_and_frozen_parts_stay_bit_identical(tiny, data):
    model = copy.deepcopy(tiny[0])
    before = _state(model)
    report = lorsu.update(model, data, sparsity=0.1, top_heads=1, rank=4, alpha=4, epochs=3, lr=1e-2)
    after = _state(model)
    blocks = model.vision_model.encoder.layers
    fc1_numel = blocks[0].mlp.fc1.weight.numel()
    assert report.fc1_chosen == [round(0.1 * fc1_numel)] * len(blocks)
    assert report.fc1_masks is not None and report.fc1_masks.sum(dim=(1, 2)).tolist() == report.fc1_chosen
    assert all(len(h) == 1 for h in report.heads)
    # nothing outside the vision side changes: text encoder, text projection, temperature
    for k in before:
        if not (k.startswith("vision_model.") or k.startswith("visual_projection.")):
            assert torch.equal(before[k], after[k]), k
    may_change = ("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.", "mlp.fc1.weight", "mlp.fc1.bias")
    head_dim = blocks[0].self_attn.q_proj.out_features // HEADS
    for i in range(len(blocks)):
        pre = f"vision_model.encoder.layers.{i}."
        assert not torch.equal(before[pre + "mlp.fc1.bias"], after[pre + "mlp.fc1.bias"])  # trained densely
        mask = report.fc1_masks[i]
        w0, w1 = before[pre + "mlp.fc1.weight"], after[pre + "mlp.fc1.weight"]
        assert torch.equal(w0[~mask], w1[~mask])  # unchosen fc1 weights bit-identical
        assert not torch.equal(w0[mask], w1[mask])  # chosen ones trained
        rows = lorsu.head_rows(report.heads[i], head_dim)
        other = torch.ones(blocks[i].self_attn.q_proj.out_features, dtype=torch.bool)
        other[rows] = False
        for proj in ("q_proj", "k_proj", "v_proj"):
            a, b = before[pre + f"self_attn.{proj}.weight"], after[pre + f"self_attn.{proj}.weight"]
            assert torch.equal(a[other], b[other]), (i, proj)  # other heads' rows bit-identical
            assert not torch.equal(a[rows], b[rows]), (i, proj)
    for k in before:  # everything else of the vision encoder is frozen
        if k.startswith("vision_model.") and not any(s in k for s in may_change):
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["visual_projection.weight"], after["visual_projection.weight"])
    # the model is plain again: no wrapper left behind
    assert all(type(b.mlp.fc1) is nn.Linear and type(b.self_attn.q_proj) is nn.Linear for b in blocks)
    assert type(model.visual_projection) is nn.Linear
    assert all(p.requires_grad for p in model.parameters())


def test_merging_leaves_outputs_unchanged(tiny, data):
    model = copy.deepcopy(tiny[0]).eval()
    g = torch.Generator().manual_seed(3)
    patches = []
    for blk in model.vision_model.encoder.layers:
        attn = blk.self_attn
        for proj in ("q_proj", "k_proj", "v_proj"):
            w = RowLoRALinear(getattr(attn, proj), rank=4, alpha=8, rows=lorsu.head_rows([0, 2], 8))
            with torch.no_grad():
                w.up.copy_(torch.randn(w.up.shape, generator=g) * 0.1)
            patches.append(install(attn, proj, w))
        idx = torch.randperm(blk.mlp.fc1.weight.numel(), generator=g)[:100]
        s = SparseDeltaLinear(blk.mlp.fc1, idx)
        with torch.no_grad():
            s.delta.copy_(torch.randn(100, generator=g) * 0.1)
        patches.append(install(blk.mlp, "fc1", s))
    p = RowLoRALinear(model.visual_projection, rank=4, alpha=4)
    with torch.no_grad():
        p.up.copy_(torch.randn(p.up.shape, generator=g) * 0.1)
    patches.append(install(model, "visual_projection", p))
    with torch.no_grad():
        wrapped = image_embeddings(model, data.pixel_values)
        merge_all(patches)
        merged = image_embeddings(model, data.pixel_values)
    assert type(model.visual_projection) is nn.Linear
    assert (wrapped - merged).abs().max() < 1e-5
    assert not torch.allclose(wrapped, image_embeddings(tiny[0], data.pixel_values).detach(), atol=1e-3)


def test_head_mask_only_changes_the_chosen_heads_rows():
    torch.manual_seed(0)
    base = nn.Linear(16, 32)
    w0 = base.weight.detach().clone()
    rows = lorsu.head_rows([1, 3], 8)
    layer = RowLoRALinear(base, rank=4, alpha=4, rows=rows)
    with torch.no_grad():
        layer.up.normal_()
    x = torch.randn(5, 16)
    out = layer(x)
    ref = base(x)
    untouched = torch.ones(32, dtype=torch.bool)
    untouched[rows] = False
    assert torch.equal(out[:, untouched], ref[:, untouched])
    delta = layer.delta_weight()
    assert delta[untouched].abs().max() == 0 and delta[rows].abs().min() >= 0 and delta[rows].abs().sum() > 0
    merged = layer.merge()
    assert torch.equal(merged.weight[untouched], w0[untouched])
    assert not torch.equal(merged.weight[rows], w0[rows])


def test_random_heads_differ_from_gradient_heads_but_keep_the_count(tiny, data):
    model = copy.deepcopy(tiny[0])
    grad = lorsu.update(model, data, top_heads=2, epochs=0, lr=1e-3, rank=2, alpha=2)
    rand = lorsu.update(copy.deepcopy(tiny[0]), data, top_heads=2, epochs=0, lr=1e-3, rank=2, alpha=2,
                        heads="random", seed=5)
    assert [len(h) for h in rand.heads] == [len(h) for h in grad.heads] == [2, 2]
    for scores, heads in zip(grad.head_scores, grad.heads):
        assert heads == sorted(np.argsort(scores)[-2:].tolist())


@pytest.mark.parametrize("method", ["full", "lora", "spu", "layernorm", "unmasked_fc1"])
def test_baselines_train_only_the_vision_side_they_claim(tiny, data, method):
    model = copy.deepcopy(tiny[0])
    before = _state(model)
    kw = {"epochs": 2, "lr": 1e-2, "rank": 2, "alpha": 2, "sparsity": 0.1, "top_heads": 1}
    report = METHODS[method](model, data, **kw)
    after = _state(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("vision_model.", "visual_projection.")) for k in changed), changed
    assert report.trainable_params > 0 and report.optimizer_bytes >= 8 * report.trainable_params
    assert set(after) == set(before)  # no adapter left in the state dict
    if method == "layernorm":
        assert all("norm" in k or "layrnorm" in k for k in changed)
    if method == "spu":
        assert all(k.endswith("mlp.fc1.weight") for k in changed)
        n = model.vision_model.encoder.layers[0].mlp.fc1.weight.numel()
        assert report.trainable_params == 2 * round(0.1 * n)
    if method == "lora":
        assert any("fc2" in k for k in changed) and "visual_projection.weight" in changed
        assert not hasattr(model, "peft_config")
        assert report.trainable_params == 1920  # rank 2 on the 13 modules the pattern named (measured before)
        assert report.settings["targets"] == lora_targets(model)
    if method == "full":
        vision = sum(p.numel() for p in model.vision_model.parameters()) + model.visual_projection.weight.numel()
        assert report.trainable_params == vision


def _lora_params(model: nn.Module, targets: str | list[str], rank: int) -> int:
    from peft import LoraConfig, inject_adapter_in_model

    work = copy.deepcopy(model)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, bias="none",
                                       target_modules=targets), work)
    return sum(p.numel() for n, p in work.named_parameters() if "lora_" in n)


@pytest.mark.parametrize(("which", "rank", "expected"), [("micro", 8, 75776), ("tiny", 2, 1920), ("tiny", 8, 7680)])
def test_lora_targets_are_the_modules_the_old_pattern_named(tiny, which, rank, expected):
    """The family's names pick the same modules as the old pattern, hence the same trainable parameters
    (`expected`: counted with the pattern before the change)."""
    import egokit

    model = egokit.load("micro-clip", device="cpu").model if which == "micro" else tiny[0]
    targets = lora_targets(model)
    assert sorted(targets) == sorted(n for n, _ in model.named_modules() if re.fullmatch(OLD_LORA_PATTERN, n))
    assert len(targets) == 6 * model.config.vision_config.num_hidden_layers + 1
    assert _lora_params(model, targets, rank) == _lora_params(model, OLD_LORA_PATTERN, rank) == expected


def test_a_model_without_a_dual_encoder_is_refused(data):
    vlm, processor = build_tiny("llava", seed=0)
    with pytest.raises(CapabilityError, match="LoRSU needs a model with the capability 'dual encoder'"):
        lorsu.update(vlm, data, epochs=0)
    with pytest.raises(CapabilityError, match="LoRSU"):
        METHODS["lora"](from_model(vlm, processor), data, epochs=0, lr=1e-3)
    with pytest.raises(InputError, match="dual encoder"):
        lorsu.update(nn.Linear(4, 4), data, epochs=0)


def test_a_loaded_model_and_its_module_get_the_same_session(tiny, data):
    kw = {"top_heads": 1, "epochs": 1, "lr": 1e-2, "rank": 2, "alpha": 2, "seed": 3}
    raw = copy.deepcopy(tiny[0])
    loaded = from_model(copy.deepcopy(tiny[0]), tiny[1])
    a, b = lorsu.update(raw, data, **kw), lorsu.update(loaded, data, **kw)
    assert a.heads == b.heads and a.losses == b.losses and torch.equal(a.fc1_masks, b.fc1_masks)
    assert all(torch.equal(x, y) for x, y in zip(raw.state_dict().values(), loaded.model.state_dict().values()))


def _non_blank(png: bytes) -> bool:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return int(pixels.max()) - int(pixels.min()) > 50


@pytest.mark.parametrize("method", ["lorsu", "full"])
def test_a_session_report_is_a_result(tiny, data, tmp_path, method):
    kw = {"top_heads": 1, "epochs": 1, "lr": 1e-3, "rank": 2, "alpha": 2}
    report = METHODS[method](copy.deepcopy(tiny[0]), data, **kw)
    back = SessionReport.load(report.save(tmp_path / "report.safetensors"))
    assert back.to_dict() == report.to_dict()
    if method == "lorsu":
        assert back.fc1_masks is not None and torch.equal(back.fc1_masks, report.fc1_masks)
    else:
        assert back.fc1_masks is None
    assert _non_blank(report._repr_png_())
