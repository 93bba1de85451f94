import torch
from transformers import LlavaConfig, Qwen2Config

from egokit.capture.memory import estimate_attention_memory


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
