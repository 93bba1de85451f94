"""The official training recipe of SA²VP, pinned on tiny models: the base → prompt blocks and the deep prompt
maps at the official blocks (mapped proportionally onto shallower towers), dropout 0.1 while training and
none in eval mode, α = 0.1 (the class default; the evaluation states its own), the adapter LayerNorm's eps
1e-6; and the cached frozen states."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from egokit.methods.sa2vp import training
from egokit.methods.sa2vp.evaluation import ABLATIONS, EvalSettings, build_method
from egokit.methods.sa2vp.model import SA2VP, cross_attend, official_layers
from egokit.methods.sa2vp.training import TrainSettings, fit

pytestmark = pytest.mark.usefixtures("one_thread")


def _tower(layers: int) -> CLIPVisionModel:
    torch.manual_seed(0)
    cfg = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=layers, num_attention_heads=2)
    return CLIPVisionModel(cfg).eval()


@pytest.fixture(scope="module")
def vit12():
    return _tower(12)


@pytest.fixture
def pixels():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _official_forward(sa: SA2VP, pixels: torch.Tensor) -> torch.Tensor:
    """The official encoder loop (vit_tinypara.py, `Encoder.forward`) written out for a 12-block tower:
    prompt → base at blocks 1-3, 5-7, 9-11; base → prompt at 0, 4, 8, where blocks 4 and 8 also add a new
    prompt map passed through the block and scaled per channel. Base-pathway logits."""
    parts = sa.parts
    x, p = parts.embed(pixels), sa.prompt_map(len(pixels))
    prompt_list, b2p_list = (4, 8), (0, 4, 8)

    def fusion(i: int, dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        attended = cross_attend(parts.attention(i), dst, src, "local", parts.grid, 3, parts.prefix)
        return sa.adapters[i](attended + dst)

    for i in range(12):
        if i not in b2p_list:
            f = fusion(i, x, p)
            p, x = parts.run_block(i, p), parts.run_block(i, x) + 0.1 * f
        else:
            f = fusion(i, p, x)
            p = parts.run_block(i, p)
            if i in prompt_list:
                j = i // 4 - 1
                new = parts.run_block(i, sa.deep_proj[j](sa.deep_prompts[j])[None].expand(len(pixels), -1, -1))
                p = p + new * sa.deep_scale[j]
            x = parts.run_block(i, x)
            p = p + 0.1 * f
    return sa.head(parts.pool(x))


def test_official_block_indices_are_mapped_proportionally():
    assert official_layers((0, 4, 8), 12) == (0, 4, 8)
    assert official_layers((0, 4, 8), 4) == (0, 1, 3)       # 4·4/12 = 1.33 → 1, 8·4/12 = 2.67 → 3
    assert official_layers((4, 8), 4) == (1, 3)
    assert official_layers((4, 8), 6) == (2, 4)
    assert official_layers((0, 4, 8), 24) == (0, 8, 16)


def test_defaults_are_the_official_rules_on_a_12_block_vit(vit12, pixels):
    sa = SA2VP(vit12, 5)
    assert sa.alpha == 0.1
    assert sa.distill_layers == (0, 4, 8)
    assert sa.deep_prompt_layers == (4, 8) and len(sa.deep_prompts) == 2
    assert all(a.norm.eps == 1e-6 for a in sa.adapters)
    assert sa.attn_drop.p == 0.1 and all(a.drop.p == 0.1 for a in sa.adapters)
    with torch.no_grad():
        torch.testing.assert_close(sa(pixels).logits, _official_forward(sa, pixels), rtol=0, atol=1e-5)


def test_the_deep_prompt_maps_enter_at_the_stated_blocks(vit12, pixels):
    """Changing deep prompt map j changes the prompt pathway from block 4·(j+1) on, and nothing before."""
    torch.manual_seed(0)
    sa = SA2VP(vit12, 5, interaction="none")  # the pathways never meet: the prompt pathway alone shows it
    seen: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple) else out))
             for b in sa.parts.blocks]
    try:
        with torch.no_grad():
            sa(pixels, return_change=True)
            before = [s.clone() for s in seen]
            seen.clear()
            sa.deep_prompts[1].add_(1.0)  # the map of block 8
            sa(pixels, return_change=True)
    finally:
        for h in hooks:
            h.remove()
    # per block the hook sees: the joint run (base + prompt), then at blocks 4 and 8 the deep map's own run
    order = [i for i in range(12) for _ in range(2 if i in (4, 8) else 1)]
    changed = {order[k] for k, (a, b) in enumerate(zip(before, seen)) if not torch.equal(a, b)}
    assert changed == {8, 9, 10, 11}


def test_the_micro_depth_gets_the_mapped_blocks():
    sa = SA2VP(_tower(4), 3)
    assert sa.distill_layers == (0, 1, 3) and sa.deep_prompt_layers == (1, 3)
    shallow = SA2VP(_tower(2), 3)  # (0, 1) would leave no prompt → base block: the last one stays one
    assert shallow.distill_layers == (0,) and shallow.deep_prompt_layers == (1,)


def test_dropout_is_on_while_training_and_off_in_eval_mode(vit12, pixels):
    sa = SA2VP(vit12, 5)
    assert not sa.training  # built for inference
    with torch.no_grad():
        a, b = sa(pixels).logits, sa(pixels).logits
        assert torch.equal(a, b)
        sa.train()
        assert not sa.backbone.training  # the frozen tower stays in eval mode
        c, d = sa(pixels).logits, sa(pixels).logits
        assert not torch.equal(c, d)
        off = SA2VP(vit12, 5, dropout=0.0).train()
        assert torch.equal(off(pixels).logits, off(pixels).logits)
    sa.eval()


def test_the_evaluation_uses_the_official_recipe_and_each_ablation_changes_one_thing(vit12):
    settings = EvalSettings()
    assert settings.dropout == 0.1 and settings.norm_eps == 1e-6
    assert settings.distill_layers is None and settings.deep_prompt_layers is None
    assert settings.alpha == 1.0  # the evaluation's α, chosen on the development seed (official: 0.1)
    sa = build_method("sa2vp", vit12, 3, settings, 4)
    assert (sa.alpha, sa.dropout, sa.norm_eps, sa.deep_prompt_layers) == (1.0, 0.1, 1e-6, (4, 8))
    assert build_method("no_dropout", vit12, 3, settings, 4).dropout == 0.0
    assert build_method("no_deep_prompts", vit12, 3, settings, 4).deep_prompt_layers == ()
    assert build_method("official_alpha", vit12, 3, settings, 4).alpha == 0.1
    assert build_method("norm_eps_1e-5", vit12, 3, settings, 4).adapters[0].norm.eps == 1e-5
    assert sa.distill_layers == (0, 4, 8)  # a 12-block tower: the official blocks
    assert build_method("official_blocks", vit12, 3, settings, 4).distill_layers == (0, 4, 8)
    micro = _tower(4)  # the 4-block micro CLIP's depth: image → prompt at (0, 2), chosen on development seeds
    assert build_method("sa2vp", micro, 3, settings, 4).distill_layers == (0, 2)
    assert build_method("official_blocks", micro, 3, settings, 4).distill_layers == (0, 1, 3)
    assert build_method("sa2vp", micro, 3, replace(settings, distill_layers=(1,)), 4).distill_layers == (1,)
    assert all("." not in name for name in ABLATIONS), "ablation names become metric keys"


@pytest.mark.parametrize("options", [{}, {"interaction": "none"}, {"directions": "prompt_to_base"},
                                     {"distill_layers": (0, 2)}])
def test_frozen_states_give_the_same_forward(options, pixels):
    sa = SA2VP(_tower(4), 3, **options)
    states = sa.frozen_states(pixels)
    assert states.shape[1] == sa.frozen_blocks + 1
    with torch.no_grad():
        torch.testing.assert_close(sa(states=states).logits, sa(pixels).logits, rtol=0, atol=1e-5)
        out_p, out_s = sa(pixels, return_change=True), sa(states=states, return_change=True)
        torch.testing.assert_close(out_s.change, out_p.change, rtol=0, atol=1e-5)


def test_training_on_cached_states_matches_training_on_pixels(monkeypatch):
    tower = _tower(4)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 1, 0, 2, 1, 0])
    settings = replace(TrainSettings(), epochs=2, batch=4)
    runs = []
    for limit in (training.CACHE_BYTES, 0):  # 0: nothing fits, every step starts from the pixels
        monkeypatch.setattr(training, "CACHE_BYTES", limit)
        torch.manual_seed(0)
        net = SA2VP(tower, 3)
        runs.append((fit(net, x, y, settings, progress=False), net.head.weight.detach().clone()))
    (cached, w_cached), (plain, w_plain) = runs
    assert cached == pytest.approx(plain, abs=1e-5)
    torch.testing.assert_close(w_cached, w_plain, rtol=0, atol=1e-5)
