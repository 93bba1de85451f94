"""Capture on every supported family's tiny model: exact against eager, gradient-exact, no trace left."""

import numpy as np
import pytest
import torch

from egokit.capture.engine import capture
from egokit.capture.look import generate_and_look
from egokit.errors import InputError
from egokit.models.loading import from_model
from egokit.models.tiny import build_tiny

VLMS = ["llava", "llava_onevision", "qwen2_vl", "idefics3", "paligemma"]


def picture(seed=0, size=(64, 64)):
    return (np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype("uint8")


@pytest.fixture(scope="module", params=VLMS)
def vlm(request):
    model, processor = build_tiny(request.param)
    loaded = from_model(model, processor)
    inputs = loaded.adapter.prepare([picture()], loaded.adapter.prompt("what color is the circle ?", 1))
    return loaded, loaded.adapter.model_inputs(inputs), loaded.adapter.visual_layout(inputs, 0)


def eager(model, **inputs):
    model.set_attn_implementation("eager")
    try:
        return model(**inputs, output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")


def test_language_rows_equal_eager(vlm):
    loaded, inputs, layout = vlm
    visual = torch.cat([t.positions for t in layout])
    seq = inputs["input_ids"].shape[1]
    rows = [seq - 3, seq - 1]
    with torch.no_grad():
        before = loaded.model(**inputs).logits
        with capture(loaded, queries=rows, keys=visual, part="language") as cap:
            during = loaded.model(**inputs).logits
        ref = eager(loaded.model, **inputs).attentions
        after = loaded.model(**inputs).logits
    assert len(cap.attentions) == loaded.adapter.num_layers("language") == len(ref)
    for layer, att in enumerate(ref):
        torch.testing.assert_close(cap[layer], att[:, :, rows][..., visual], atol=1e-5, rtol=0)
    assert torch.equal(before, during) and torch.equal(before, after)


def test_language_gradients_equal_eager(vlm):
    loaded, inputs, layout = vlm
    model = loaded.model
    visual = torch.cat([t.positions for t in layout])
    row = inputs["input_ids"].shape[1] - 1
    out = eager(model, **inputs)
    for a in out.attentions:
        a.retain_grad()
    out.logits[0, -1].logsumexp(-1).backward()
    expected = [a.grad[:, :, [row]][..., visual] for a in out.attentions]
    model.zero_grad(set_to_none=True)
    with capture(loaded, queries=[row], keys=visual, part="language", grad=True) as cap:
        out2 = model(**inputs)
    out2.logits[0, -1].logsumexp(-1).backward()
    model.zero_grad(set_to_none=True)
    assert max(e.abs().max().item() for e in expected) > 0
    for layer, e in enumerate(expected):
        torch.testing.assert_close(cap.grads[layer], e, atol=1e-5, rtol=1e-4)


def test_generate_and_look(vlm):
    loaded, _, _ = vlm
    look = generate_and_look(loaded, picture(1), "what color is the circle ?", max_new_tokens=4, grad=True)
    n_visual = sum(len(t) for t in look.layout)
    layers = loaded.adapter.num_layers("language")
    assert look.attentions.shape[0] == layers and look.attentions.shape[2] == len(look.tokens) <= 4
    assert look.attentions.shape[3] == n_visual and look.grads.shape == look.attentions.shape
    assert (look.attentions >= 0).all() and (look.attentions.sum(-1) <= 1 + 1e-5).all()
    assert look.token_scores(0).shape == (len(look.layout[0]),)
    assert look.token_scores(-1, gradient=True).shape == (len(look.layout[0]),)
    # teacher forcing the same answer gives the same maps
    again = generate_and_look(loaded, picture(1), "what color is the circle ?", answer=look.answer)
    if again.token_ids == look.token_ids:
        torch.testing.assert_close(again.attentions, look.attentions, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="not in the answer"):
        look.token_index("definitely-not-a-token")
    with pytest.raises(InputError, match="empty"):
        generate_and_look(loaded, picture(1), "  ")


def test_vision_tower_rows_equal_eager():
    model, processor = build_tiny("llava")
    loaded = from_model(model, processor)
    pixels = loaded.adapter.prepare([picture()], loaded.adapter.prompt("hi", 1))["pixel_values"]
    tower = model.model.vision_tower
    with torch.no_grad(), capture(loaded, part="vision", queries=[0], keys=list(range(1, 9))) as cap:
        tower(pixel_values=pixels)
    tower.set_attn_implementation("eager")
    ref = tower(pixel_values=pixels, output_attentions=True).attentions
    tower.set_attn_implementation("sdpa")
    for layer, att in enumerate(ref):
        torch.testing.assert_close(cap[layer], att[:, :, [0], 1:9], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_dual_encoders_text_and_vision(family):
    model, processor = build_tiny(family)
    loaded = from_model(model, processor)
    inputs = loaded.adapter.prepare([picture()], ["a red circle"])
    inputs = loaded.adapter.model_inputs(inputs)
    seq = inputs["input_ids"].shape[1]
    with torch.no_grad(), capture(loaded, part="text", queries=[seq - 1]) as t, \
            capture(loaded, part="vision", queries=[0]) as v:
        model(**inputs)
    ref = eager(model, **inputs)
    for layer, att in enumerate(ref.text_model_output.attentions):
        torch.testing.assert_close(t[layer], att[:, :, [seq - 1]], atol=1e-5, rtol=0)
    for layer, att in enumerate(ref.vision_model_output.attentions):
        torch.testing.assert_close(v[layer], att[:, :, [0]], atol=1e-5, rtol=0)


def test_capture_on_a_model_dispatched_by_accelerate(tmp_path):
    """Sharded loading (`device_map`) puts accelerate hooks on modules; here one language layer lives on
    disk and is paged in at forward time — the same mechanism as sharding across GPUs."""
    from egokit import load

    model, processor = build_tiny("llava")
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    device_map = {"model.vision_tower": "cpu", "model.multi_modal_projector": "cpu",
                  "model.language_model.embed_tokens": "cpu", "model.language_model.layers.0": "cpu",
                  "model.language_model.layers.1": "disk", "model.language_model.norm": "cpu",
                  "model.language_model.rotary_emb": "cpu", "lm_head": "cpu"}
    loaded = load(tmp_path / "m", device_map=device_map, offload_folder=str(tmp_path / "offload"))
    assert loaded.model.hf_device_map["model.language_model.layers.1"] == "disk"
    inputs = loaded.adapter.prepare([picture()], loaded.adapter.prompt("what color ?", 1))
    model_inputs = loaded.adapter.model_inputs(inputs)
    visual = loaded.adapter.visual_layout(inputs, 0)[0].positions
    last = model_inputs["input_ids"].shape[1] - 1
    with torch.no_grad(), capture(loaded, queries=[last], keys=visual) as cap:
        loaded.model(**model_inputs)
    ref = eager(model, **model_inputs).attentions
    assert len(cap.attentions) == len(ref) == 2
    for layer, att in enumerate(ref):
        torch.testing.assert_close(cap[layer], att[:, :, [last]][..., visual], atol=1e-5, rtol=0)
