import pytest
import torch
from transformers import LlavaConfig, Qwen2Config

from egokit.capture.engine import capture
from egokit.capture.memory import estimate_attention_memory, main, real_attention_memory, real_memory_report


def test_full_vs_targeted_bytes():
    cfg = Qwen2Config(hidden_size=896, num_attention_heads=14, num_key_value_heads=2, num_hidden_layers=24)
    est = estimate_attention_memory(cfg, seq_len=790, query_rows=10, key_cols=730, dtype=torch.float32)
    assert est.full_bytes == 24 * 14 * 790 * 790 * 4
    assert est.targeted_bytes == 24 * 14 * 10 * 730 * 4
    assert est.ratio > 80
    half = estimate_attention_memory(cfg, seq_len=790, dtype="float16", layers=3)
    assert half.full_bytes == 24 * 14 * 790 * 790 * 2 and half.layers == 3


def test_uses_the_language_model_of_a_vlm():
    cfg = LlavaConfig(text_config={"model_type": "llama", "num_hidden_layers": 5, "num_attention_heads": 8,
                                   "hidden_size": 64, "intermediate_size": 128, "vocab_size": 100})
    est = estimate_attention_memory(cfg, seq_len=100, dtype=torch.float32)
    assert est.layers == 5 and est.heads == 8 and est.full_bytes == 5 * 8 * 100 * 100 * 4


# ---------------------------------------------------------------------- real geometry and real shapes


def _net_allocated(run) -> int:
    """Bytes torch allocated and did not free while `run()` ran (its profiler's memory accounting): what the
    call leaves held."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        kept = run()
    del kept
    return sum(event.self_cpu_memory_usage for event in prof.key_averages())


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.fixture(scope="module")
def idefics3_real():
    """Idefics3-8B's geometry, cut down (2 layers × 4 heads): the astronaut is 2873 image tokens in a
    2918-token prompt, so one layer's full attention map is 4 × 2918² floats (136 MB)."""
    from skimage import data as skdata

    from egokit.models.loading import from_model
    from egokit.models.tiny import build_real

    lm = from_model(*build_real("idefics3"), name="real-idefics3")
    inputs = lm.adapter.prepare([skdata.astronaut()], lm.adapter.prompt("describe the image .", 1))
    return lm, inputs


def test_estimate_matches_the_measured_attention_memory(idefics3_real):
    lm, inputs = idefics3_real
    model, adapter = lm.model, lm.adapter
    model_inputs = adapter.model_inputs(inputs)
    seq = model_inputs["input_ids"].shape[1]
    visual = adapter.visual_layout(inputs, 0)[0].positions
    est = estimate_attention_memory(model.config, seq, query_rows=2, key_cols=len(visual), dtype=torch.float32)
    assert est.layers == 2 and est.heads == 4 and seq == 2918

    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            plain = _net_allocated(lambda: model(**model_inputs))
            full = _net_allocated(lambda: model(**model_inputs, output_attentions=True))
            attentions = model(**model_inputs, output_attentions=True).attentions
    finally:
        model.set_attn_implementation("sdpa")
    # what holding every layer's map costs, measured two ways: torch's allocations, the returned tensors
    assert abs((full - plain) - est.full_bytes) <= 0.1 * est.full_bytes, (full - plain, est.full_bytes)
    assert abs(_tensor_bytes(attentions) - est.full_bytes) <= 0.1 * est.full_bytes
    del attentions

    def targeted():
        with capture(lm, queries=[seq - 2, seq - 1], keys=visual, part="language") as cap:
            out = model(**model_inputs)
        return cap, out

    with torch.no_grad():
        held = _net_allocated(targeted) - _net_allocated(lambda: model(**model_inputs))
    assert abs(held - est.targeted_bytes) <= 0.1 * est.targeted_bytes, (held, est.targeted_bytes)


def test_real_shape_estimate_scales_to_the_checkpoint():
    seq = 585
    est = real_attention_memory("llava", seq, query_rows=10, key_cols=576)
    # llava-1.5-7b: 32 layers × 32 heads, bfloat16 maps
    assert (est.layers, est.heads) == (32, 32)
    assert est.full_bytes == 32 * 32 * seq * seq * 2 and est.targeted_bytes == 32 * 32 * 10 * 576 * 4
    vision = real_attention_memory("llava", 577, part="vision", dtype="float16")
    assert (vision.layers, vision.heads) == (24, 16) and vision.full_bytes == 24 * 16 * 577 * 577 * 2


def test_real_memory_report_measures_the_sequence_and_prints(capsys):
    report = real_memory_report("qwen2_vl", image_size=(448, 672))
    # smart resize keeps 448×672 (multiples of 28): 16 × 24 merged tokens
    assert report.visual_tokens == 16 * 24 and report.seq_len > report.visual_tokens
    assert (report.real.layers, report.real.heads) == (28, 12)
    assert report.real.full_bytes == 28 * 12 * report.seq_len**2 * 2
    assert (report.cut_down.layers, report.cut_down.heads) == (2, 4)
    assert main(["clip", "--image", "300x451"]) == 0
    printed = capsys.readouterr().out
    assert "openai/clip-vit-base-patch32" in printed and "50 tokens in the vision stack (49 visual)" in printed
    assert "12 layers x 12 heads" in printed
    with pytest.raises(SystemExit):
        main(["no-such-checkpoint"])
