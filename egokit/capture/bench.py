"""Benchmark: plain sdpa forward vs targeted capture vs eager `output_attentions=True`.

The model is a randomly initialised Qwen2 language model shaped like LLaVA-OneVision-0.5B's (width 896,
14 heads, 2 KV heads, MLP 4864; 24 layers in the real model, fewer by default on a CPU — the JSON says
how many) fed ~730 visual + ~60 text embeddings. Times are medians over interleaved repeats in one process;
peak memory is measured per variant in a fresh child process (peak RSS, reset after the model is
built, above the RSS at that point), so the three figures come from one run, side by side.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import statistics
import time
from typing import Any

import torch

WIDTH, HEADS, KV_HEADS, MLP, VOCAB = 896, 14, 2, 4864, 32000
QUERY_ROWS = 10
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def _build(layers: int, seed: int) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=MLP, num_hidden_layers=layers,
                      num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=4096,
                      tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    return Qwen2ForCausalLM(cfg).eval()


def _inputs(visual: int, text: int, seed: int) -> tuple[torch.Tensor, list[int], list[int]]:
    g = torch.Generator().manual_seed(seed + 1)
    seq = visual + text
    embeds = torch.randn(1, seq, WIDTH, generator=g) * 0.02
    prefix = min(14, text // 2)  # system prompt tokens before the image, the rest after it
    visual_pos = list(range(prefix, prefix + visual))
    query_pos = list(range(seq - QUERY_ROWS, seq))
    return embeds, visual_pos, query_pos


def _run(model: Any, variant: str, embeds: torch.Tensor, visual_pos: list[int], query_pos: list[int]) -> Any:
    from egokit.capture.engine import capture

    kwargs = {"inputs_embeds": embeds, "logits_to_keep": 1, "use_cache": False}
    with torch.no_grad():
        if variant == "plain":
            model(**kwargs)
            return None
        if variant == "targeted":
            modules = [layer.self_attn for layer in model.model.layers]
            with capture(modules, queries=query_pos, keys=visual_pos) as cap:
                model(**kwargs)
            return cap.stack()
        if variant == "eager":
            model.set_attn_implementation("eager")
            try:
                out = model(**kwargs, output_attentions=True)
            finally:
                model.set_attn_implementation("sdpa")
            return out.attentions
    raise ValueError(variant)


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the peak-RSS mark (VmHWM) so it measures only what follows; False where the kernel can't."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_child(variant: str, layers: int, visual: int, text: int, seed: int, repeats: int, queue: Any) -> None:
    import egokit.capture.engine  # noqa: F401 - imported before the measurement starts

    model = _build(layers, seed)
    embeds, visual_pos, query_pos = _inputs(visual, text, seed)
    _run(model, variant, embeds, visual_pos, query_pos)  # warm-up: one-off allocations are not the variant's
    base = _status_mb("VmRSS")
    if not _reset_peak():
        queue.put(float("nan"))
        return
    for _ in range(repeats):
        _run(model, variant, embeds, visual_pos, query_pos)
    queue.put(max(_status_mb("VmHWM") - base, 0.0))


def _peak_mb(variant: str, layers: int, visual: int, text: int, seed: int, repeats: int) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_child, args=(variant, layers, visual, text, seed, repeats, queue))
    # Large blocks straight from mmap and back to the OS on free, so resident memory follows live tensors
    # instead of what malloc's arenas happen to keep.
    saved = {k: os.environ.get(k) for k in _MALLOC_ENV}
    os.environ.update(_MALLOC_ENV)
    try:
        proc.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    value = queue.get(timeout=1800)
    proc.join()
    return float(value)


def run_capture_benchmark(layers: int = 4, repeats: int = 5, visual_tokens: int = 730, text_tokens: int = 60,
                          seed: int = 0, memory: bool = True) -> dict[str, Any]:
    """Run the three variants side by side and return the JSON-able result (medians)."""
    model = _build(layers, seed)
    embeds, visual_pos, query_pos = _inputs(visual_tokens, text_tokens, seed)
    variants = ("plain", "targeted", "eager")
    for v in variants:  # warm-up
        _run(model, v, embeds, visual_pos, query_pos)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeats):
        for v in variants:  # interleaved, so drifting machine load hits all three alike
            t0 = time.perf_counter()
            _run(model, v, embeds, visual_pos, query_pos)
            times[v].append(time.perf_counter() - t0)
    targeted = _run(model, "targeted", embeds, visual_pos, query_pos)
    eager = _run(model, "eager", embeds, visual_pos, query_pos)
    q = torch.tensor(query_pos)
    k = torch.tensor(visual_pos)
    reference = torch.stack([a[:, :, q][..., k] for a in eager]).float()
    max_abs_diff = (targeted - reference).abs().max().item()

    result: dict[str, Any] = {
        "model": "Qwen2 LM shaped like LLaVA-OneVision-0.5B (random weights)",
        "layers": layers,
        "layers_real_model": 24,
        "hidden_size": WIDTH,
        "heads": HEADS,
        "kv_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "seq_len": visual_tokens + text_tokens,
        "visual_tokens": visual_tokens,
        "text_tokens": text_tokens,
        "query_rows": QUERY_ROWS,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "plain_s": statistics.median(times["plain"]),
        "targeted_s": statistics.median(times["targeted"]),
        "eager_s": statistics.median(times["eager"]),
        "max_abs_diff": max_abs_diff,
    }
    result["targeted_over_plain"] = result["targeted_s"] / result["plain_s"]
    if memory:
        for v in variants:
            result[f"{v}_peak_mb"] = _peak_mb(v, layers, visual_tokens, text_tokens, seed, repeats=2)
        extra_eager = result["eager_peak_mb"] - result["plain_peak_mb"]
        extra_targeted = result["targeted_peak_mb"] - result["plain_peak_mb"]
        result["targeted_extra_over_eager_extra"] = extra_targeted / extra_eager if extra_eager > 0 else None
    return result


if __name__ == "__main__":
    print(json.dumps(run_capture_benchmark(), indent=2))
