"""SA²VP and the VPT baselines on tiny frozen ViTs: frozen backbone, parameter counts, exact pieces."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    SiglipVisionConfig,
    SiglipVisionModel,
    ViTConfig,
    ViTModel,
)

from egokit.errors import InputError
from egokit.methods.sa2vp.model import SA2VP, cross_attend, prompt_change_maps, sa2vp_param_count
from egokit.methods.sa2vp.training import TrainSettings, fit
from egokit.methods.sa2vp.vpt import VPT, LinearProbe, matching_vpt_length, vpt_param_count
from egokit.models.tiny import build_tiny
from egokit.models.vit_parts import vit_parts

KW = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
      "num_attention_heads": 2}

pytestmark = pytest.mark.usefixtures("one_thread")



def _models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "clip": CLIPVisionModel(CLIPVisionConfig(**KW)).eval(),
        "vit": ViTModel(ViTConfig(**KW), add_pooling_layer=False).eval(),
        "siglip": SiglipVisionModel(SiglipVisionConfig(**KW)).eval(),
    }


def _own_pooled(name: str, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(pixel_values=x)
    return out.last_hidden_state[:, 0] if name == "vit" else out.pooler_output


@pytest.fixture(scope="module")
def models():
    return _models()


@pytest.fixture
def pixels():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["clip", "vit", "siglip"])
def test_parts_reproduce_the_models_own_output(models, pixels, name):
    model = models[name]
    parts = vit_parts(model)
    x = parts.embed(pixels)
    for i in range(parts.depth):
        x = parts.run_block(i, x)
    torch.testing.assert_close(parts.pool(x), _own_pooled(name, model, pixels), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["clip", "vit"])
def test_last_block_for_cls_only_equals_the_full_block(models, name):
    parts = vit_parts(models[name])
    assert parts.pools_prefix_only
    x = torch.randn(3, 20, 32, generator=torch.Generator().manual_seed(3))
    for i in range(parts.depth):
        torch.testing.assert_close(parts.run_block_prefix(i, x), parts.run_block(i, x)[:, :1], rtol=0, atol=1e-5)
    assert not vit_parts(models["siglip"]).pools_prefix_only


@pytest.mark.parametrize("name", ["clip", "vit", "siglip"])
def test_cross_attention_uses_the_frozen_block_attention(models, pixels, name):
    """With the same tokens on both sides and global interaction it is the block's own self-attention."""
    parts = vit_parts(models[name])
    x = parts.embed(pixels)
    att = parts.attention(0)
    block = parts.blocks[0]
    own_attn = block.self_attn if hasattr(block, "self_attn") else block.attention
    expected = own_attn(att.norm(x), None)[0]
    got = cross_attend(att, x, x, "global", parts.grid, 3, parts.prefix)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["clip", "vit", "siglip"])
def test_alpha_zero_base_pathway_is_the_frozen_model(models, pixels, name):
    sa = SA2VP(models[name], num_classes=3, alpha=0.0, distill_layers=(0,))
    pooled = _own_pooled(name, models[name], pixels)
    torch.testing.assert_close(sa(pixels).logits, sa.head(pooled), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["clip", "vit", "siglip"])
def test_vpt_and_probe_run_on_every_family(models, pixels, name):
    for net in (VPT(models[name], 3, length=2, deep=True), VPT(models[name], 3, length=2, deep=False),
                LinearProbe(models[name], 3)):
        assert net(pixels).shape == (4, 3)


@pytest.mark.parametrize("options", [{}, {"interaction": "global"}, {"interaction": "none"},
                                     {"directions": "prompt_to_base"}, {"deep_prompt_layers": (1, 2)},
                                     {"d_prompt": 4}])
def test_sa2vp_trainable_params_match_the_formula(models, options):
    parts = vit_parts(models["clip"])
    sa = SA2VP(models["clip"], num_classes=5, **options)
    deep = len(options.get("deep_prompt_layers", (1, 2)))  # by default the official two deep prompt maps
    expected = sa2vp_param_count(parts.width, parts.depth, parts.tokens, options.get("d_prompt", 16), 5,
                                 options.get("interaction", "local"), deep)
    assert sa.trainable_params == expected
    # by hand for the default: prompt map 17·16 + 16·32 + 32; 3 blocks × (64 + 32·16 + 16 + 16·32 + 32);
    # 2 deep maps × (17·16 + 16·32 + 32 + 32); head
    if not options:
        assert expected == ((17 * 16 + 16 * 32 + 32) + 3 * (64 + 32 * 16 + 16 + 16 * 32 + 32)
                            + 2 * (17 * 16 + 16 * 32 + 32 + 32) + (32 * 5 + 5))


def test_vpt_params_match_the_formula_and_the_matching_length(models):
    parts = vit_parts(models["clip"])
    deep, shallow = VPT(models["clip"], 5, length=7, deep=True), VPT(models["clip"], 5, length=7, deep=False)
    assert deep.trainable_params == vpt_param_count(32, 3, 7, 5, deep=True) == 3 * 7 * 32 + 32 * 5 + 5
    assert shallow.trainable_params == vpt_param_count(32, 3, 7, 5, deep=False) == 7 * 32 + 32 * 5 + 5
    assert LinearProbe(models["clip"], 5).trainable_params == 32 * 5 + 5
    sa = SA2VP(models["clip"], 5)
    length = matching_vpt_length(sa.trainable_params, parts.width, parts.depth, 5)
    ratio = sa.trainable_params / vpt_param_count(32, 3, length, 5)
    assert 0.9 < ratio < 1.1


def test_distill_layers_are_clipped_to_the_depth(models):
    sa = SA2VP(models["clip"], 3, distill_layers=(0, 4, 8))
    assert sa.distill_layers == (0,)
    assert [sa.direction(i) for i in range(3)] == ["base_to_prompt", "prompt_to_base", "prompt_to_base"]
    one = SA2VP(models["clip"], 3, distill_layers=(0, 2), directions="prompt_to_base")
    assert [one.direction(i) for i in range(3)] == ["prompt_to_base"] * 3
    with pytest.raises(InputError):
        SA2VP(models["clip"], 3, interaction="sideways")


def test_backbone_stays_frozen_while_training(pixels):
    model, _ = build_tiny("clip")
    before = copy.deepcopy(model.state_dict())
    labels = torch.tensor([0, 1, 2, 1])
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    for net in (SA2VP(model, 3, distill_layers=(0,), deep_prompt_layers=(1,)), VPT(model, 3, length=2),
                LinearProbe(model, 3)):
        trained = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
        losses = fit(net, x, labels, TrainSettings(epochs=3, batch=2, lr=1e-2, probe_epochs=3), progress=False)
        assert len(losses) >= 3 and all(torch.isfinite(torch.tensor(losses)))
        changed = [n for n, p in net.named_parameters() if p.requires_grad and not torch.equal(p, trained[n])]
        assert changed, "training changed nothing"
        assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen weight changed"
    assert not any(p.requires_grad for p in model.vision_model.parameters())


def test_prediction_uses_the_base_pathway_and_change_maps_have_the_grid(models, pixels):
    sa = SA2VP(models["clip"], 3, distill_layers=(0,))
    out = sa(pixels, return_change=True)  # every token of the last block (no CLS-only shortcut)
    torch.testing.assert_close(sa.predict_logits(pixels), out.logits, rtol=0, atol=1e-5)
    assert out.change.shape == (4, 3, 16)
    assert torch.all(out.change[:, 0] == 0) and torch.all(out.change[:, 1:] > 0)  # block 0 is base → prompt
    images = torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8).numpy()
    maps = prompt_change_maps(sa, pixels, images, [0, 1, 2, 0], ["a", "b", "c"], "toy")
    assert maps.total().shape == (4, 4, 4) and maps.to_image().width > 0


def test_the_tower_of_a_loaded_model_comes_from_its_family(models):
    from egokit.methods.sa2vp import tower_of
    from egokit.models.loading import from_model

    clip, processor = build_tiny("clip")
    loaded = from_model(clip, processor, "tiny-clip")
    assert tower_of(loaded) is loaded.adapter.module("vision")
    assert vit_parts(tower_of(loaded)).tower is vit_parts(clip).tower
    llava, processor = build_tiny("llava")
    parts = vit_parts(tower_of(from_model(llava, processor, "tiny-llava")))
    assert parts.model_type == "clip_vision_model" and parts.depth > 0
    assert tower_of(models["vit"]) is models["vit"]  # a bare module is used as it is
    with pytest.raises(InputError, match="LoadedModel"):
        tower_of("micro-clip")
