"""Benchmark: plain sdpa forward vs targeted capture vs eager `output_attentions=True`.

Two geometries:

* ``synthetic`` (`run_capture_benchmark`): a randomly initialised Qwen2 language model shaped like
  LLaVA-OneVision-0.5B's (width 896, 14 heads, 2 KV heads, MLP 4864; 24 layers in the real model, fewer by
  default on a CPU — the JSON says how many) fed ~730 visual + ~60 text embeddings.
* ``real`` (`run_real_benchmark`): per real checkpoint the kit mirrors (`egokit.models.tiny.real_checkpoints`),
  the sequence its real-geometry processor makes of one real photo (scikit-image's astronaut, 512×512), and
  2× / 4× that (the image's span of the sequence repeated: several images, video frames), run through a
  random model with the checkpoint's language-model shape (CLIP and SigLIP: its vision tower, and 2× / 4× are
  2 / 4 images in the batch) at real width, cut in depth.

How the times are taken, so that "plain" is the fastest plain forward and a ratio does not depend on where a
variant sits in the run: every variant is warmed up first; the timed rounds rotate the order of the variants
(each one runs first, and right after each other one, equally often; before, plain always ran first, right
after eager had allocated and freed its full attention maps); the cyclic garbage collector runs between timed
runs, never inside one; targeted / plain is the median of per-round ratios (the two runs of a round are
neighbours in time, so slow load changes cancel). Plain and targeted make the same sdpa call (same mask, same
`is_causal`, same GQA flag, same strides: `sdpa_calls` checks it, the JSON has `same_sdpa_path`); the synthetic
benchmark also times the capture wrapper with nothing to record ("egokit_wrapper") as a plain candidate and
takes the faster one as plain.

Peak memory is measured per variant in a fresh child process (peak RSS above the RSS before the run, the
allocator returning freed memory to the OS), so the figures come from one run, side by side.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

WIDTH, HEADS, KV_HEADS, MLP, VOCAB = 896, 14, 2, 4864, 32000
QUERY_ROWS = 10
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
#: a peak-RSS difference below this (MiB) is within what the measurement resolves
RSS_RESOLUTION_MB = 1.0

#: targets of the real-geometry benchmark at each checkpoint's real sequence length
TIME_TARGET, MEMORY_TARGET = 1.25, 0.05
#: the real-geometry benchmark's defaults (sized to run in a few minutes on a 2-core CPU) and `--quick`'s
REAL_DEFAULTS = {"scales": (1, 2, 4), "layers": 1, "repeats": 3, "warmup": 1, "max_gflop": 250.0, "max_eager_gib": 4.0}
REAL_QUICK = {"scales": (1,), "layers": 1, "repeats": 1, "warmup": 1}
#: vocabulary of the real-geometry language models: the inputs are embeddings and one logit row is kept, so
#: the real vocabulary would only add an unused embedding table
REAL_VOCAB = 1024
#: the transformers architecture of each checkpoint's language model
_LM_ARCH = {"llava": "llama", "idefics3": "llama", "smolvlm": "llama", "llava_onevision": "qwen2",
            "qwen2_vl": "qwen2", "paligemma": "gemma"}
_VISION_ARCH = {"clip": "clip", "siglip": "siglip"}
GPU_NOTE = "not measured: this benchmark runs on the CPU only, and no GPU was available where it ran"


# ------------------------------------------------------------------------------------------ timing


def _timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        if enabled:
            gc.enable()


def time_rounds(run: Callable[[str], Any], variants: Sequence[str], repeats: int, warmup: int
                ) -> dict[str, list[float]]:
    """Seconds per run of each variant: `warmup` untimed rounds, then `repeats` rounds whose order rotates
    (round r starts with variant r mod n), so each variant runs first and after each other one equally often."""
    variants = list(variants)
    for _ in range(warmup):
        for v in variants:
            run(v)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(repeats):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            times[v].append(_timed(lambda v=v: run(v)))
    return times


def _quartiles(values: Sequence[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return [q[0], q[2]]


def paired_ratio(times: dict[str, list[float]], top: str, bottom: str) -> tuple[float, list[float]]:
    """Median and quartiles of the per-round ratios times[top][r] / times[bottom][r]."""
    ratios = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
    return statistics.median(ratios), _quartiles(ratios)


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


@contextlib.contextmanager
def sdpa_calls() -> Iterator[list[dict[str, Any]]]:
    """Record how `torch.nn.functional.scaled_dot_product_attention` is called inside the block: shapes,
    strides, mask (shape and dtype, or None), `is_causal` and `enable_gqa` — what picks the sdpa kernel."""
    calls: list[dict[str, Any]] = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        names = ("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        given = {**dict(zip(names, args, strict=False)), **kwargs}
        mask = given.get("attn_mask")
        calls.append({
            "query": list(query.shape), "query_stride": list(query.stride()), "key": list(key.shape),
            "key_stride": list(key.stride()), "dtype": str(query.dtype),
            "mask": None if mask is None else [list(mask.shape), str(mask.dtype)],
            "is_causal": bool(given.get("is_causal", False)), "enable_gqa": bool(given.get("enable_gqa", False)),
            "dropout_p": float(given.get("dropout_p", 0.0)),
        })
        return original(query, key, value, *args, **kwargs)

    torch.nn.functional.scaled_dot_product_attention = spy
    try:
        yield calls
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


# ------------------------------------------------------------------------------------------ memory


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


def _trim() -> None:
    """Give freed heap memory back to the OS (glibc), so the RSS before a run counts live memory only."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _peak_of(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Peak RSS above the RSS before `fn()` (MiB; nan where the kernel cannot reset the peak), and its result."""
    gc.collect()
    _trim()
    base = _status_mb("VmRSS")
    if not _reset_peak():
        return float("nan"), fn()
    out = fn()
    return max(_status_mb("VmHWM") - base, 0.0), out


def _spawn(target: Callable[..., None], *args: Any) -> Any:
    """Run `target(*args, queue)` in a fresh process whose allocator maps large blocks and returns them on free
    (resident memory follows live tensors, not what malloc's arenas keep); return what it put on the queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
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
    value = queue.get(timeout=3600)
    proc.join()
    if isinstance(value, BaseException):
        raise value
    return value


# ------------------------------------------------------------------------------------------ synthetic


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


def _attention_modules(model: Any) -> list[Any]:
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "layers"):
        return [layer.self_attn for layer in inner.layers]
    tower = getattr(model, "vision_model", model)
    return [layer.self_attn for layer in tower.encoder.layers]


def _forward(model: Any, variant: str, inputs: dict[str, Any], query_pos: list[int], key_pos: list[int]) -> Any:
    """One forward of `variant`: "plain" (sdpa), "egokit_wrapper" (sdpa through the capture's attention
    function, nothing recorded), "targeted" (capture of query_pos × key_pos on every layer) or "eager"
    (`output_attentions=True`). Returns the captured attention, or None."""
    from egokit.capture.engine import capture

    with torch.no_grad():
        if variant == "plain":
            model(**inputs)
            return None
        if variant in ("targeted", "egokit_wrapper"):
            queries = query_pos if variant == "targeted" else []
            with capture(_attention_modules(model), queries=queries, keys=key_pos) as cap:
                model(**inputs)
            return cap.stack() if variant == "targeted" else None
        if variant == "eager":
            model.set_attn_implementation("eager")
            try:
                out = model(**inputs, output_attentions=True)
            finally:
                model.set_attn_implementation("sdpa")
            return out.attentions
    raise ValueError(variant)


def _run(model: Any, variant: str, embeds: torch.Tensor, visual_pos: list[int], query_pos: list[int]) -> Any:
    inputs = {"inputs_embeds": embeds, "logits_to_keep": 1, "use_cache": False}
    return _forward(model, variant, inputs, query_pos, visual_pos)


def _diff(targeted: torch.Tensor, eager: Sequence[torch.Tensor], query_pos: list[int], key_pos: list[int]) -> float:
    q = torch.tensor(query_pos)
    k = torch.tensor(key_pos)
    reference = torch.stack([a[:, :, q][..., k] for a in eager]).float()
    return (targeted - reference).abs().max().item()


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
    return float(_spawn(_peak_child, variant, layers, visual, text, seed, repeats))


def run_capture_benchmark(layers: int = 4, repeats: int = 7, visual_tokens: int = 730, text_tokens: int = 60,
                          seed: int = 0, memory: bool = True, warmup: int = 2) -> dict[str, Any]:
    """Time the variants side by side (rotating rounds) and return the JSON-able result (medians).

    `warmup` untimed rounds come first (at least one: it also records each variant's sdpa call)."""
    load_before = _load()
    warmup = max(warmup, 1)
    model = _build(layers, seed)
    embeds, visual_pos, query_pos = _inputs(visual_tokens, text_tokens, seed)
    variants = ("plain", "egokit_wrapper", "targeted", "eager")
    calls = {}
    for v in variants:  # the sdpa-path check, also the first warm-up round
        with sdpa_calls() as seen:
            _run(model, v, embeds, visual_pos, query_pos)
        calls[v] = seen
    times = time_rounds(lambda v: _run(model, v, embeds, visual_pos, query_pos), variants, repeats,
                        max(warmup - 1, 0))
    medians = {v: statistics.median(t) for v, t in times.items()}
    plain_path = min(("plain", "egokit_wrapper"), key=lambda v: medians[v])
    ratio, ratio_iqr = paired_ratio(times, "targeted", plain_path)
    targeted = _run(model, "targeted", embeds, visual_pos, query_pos)
    eager = _run(model, "eager", embeds, visual_pos, query_pos)

    result: dict[str, Any] = {
        "geometry": "synthetic",
        "model": "Qwen2 LM shaped like LLaVA-OneVision-0.5B (random weights)",
        "device": "cpu",
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
        "warmup": warmup,
        "order": "rotating rounds",
        "threads": torch.get_num_threads(),
        "plain_paths": {"sdpa": medians["plain"], "egokit_wrapper": medians["egokit_wrapper"]},
        "plain_path": "sdpa" if plain_path == "plain" else plain_path,
        "same_sdpa_path": calls["plain"] == calls["egokit_wrapper"] == calls["targeted"],
        "sdpa_call": calls["plain"][0] if calls["plain"] else None,
        "plain_s": medians[plain_path],
        "targeted_s": medians["targeted"],
        "eager_s": medians["eager"],
        "targeted_over_plain": ratio,
        "targeted_over_plain_iqr": ratio_iqr,
        "targeted_over_plain_of_minima": min(times["targeted"]) / min(times[plain_path]),
        "max_abs_diff": _diff(targeted, eager, query_pos, visual_pos),
    }
    if memory:
        for v in ("plain", "targeted", "eager"):
            result[f"{v}_peak_mb"] = _peak_mb(v, layers, visual_tokens, text_tokens, seed, repeats=2)
        extra_eager = result["eager_peak_mb"] - result["plain_peak_mb"]
        extra_targeted = result["targeted_peak_mb"] - result["plain_peak_mb"]
        result["targeted_extra_over_eager_extra"] = extra_targeted / extra_eager if extra_eager > 0 else None
    result["load_before"] = load_before
    result["load_after"] = _load()
    return result


# ------------------------------------------------------------------------------------------ real geometry


def real_names() -> list[str]:
    """The checkpoints the real-geometry benchmark covers (every `egokit.models.tiny.real_checkpoints()`)."""
    from egokit.models.tiny import real_checkpoints

    return list(real_checkpoints())


def _photo() -> Any:
    from skimage import data

    return data.astronaut()  # 512×512 RGB


def real_layout(name: str) -> dict[str, Any]:
    """The sequence one real photo makes for checkpoint `name`, measured with its real-geometry processor:
    length, visual-token positions, and the span of the sequence the image occupies."""
    from egokit.models.adapters.base import GENERATES_TEXT
    from egokit.models.loading import from_model
    from egokit.models.tiny import build_real

    model, processor = build_real(name)
    adapter = from_model(model, processor, name=f"real-geometry-{name}").adapter
    photo = _photo()
    if adapter.has(GENERATES_TEXT):
        inputs = adapter.prepare([photo], adapter.prompt("describe the image .", 1))
        layout = adapter.visual_layout(inputs, 0)
        visual = sorted(int(p) for t in layout for p in t.positions.tolist())
        return {"part": "language", "seq_len": int(inputs["input_ids"].shape[1]), "visual": visual,
                "span": [visual[0], visual[-1] + 1], "photo": list(photo.shape[:2])}
    inputs = adapter.prepare([photo], "a photo")
    layout = adapter.visual_layout(inputs, 0)
    prefix = int(layout[0].extra.get("prefix_tokens", 0))
    seq = prefix + len(layout[0])
    cfg = model.config.vision_config
    return {"part": "vision", "seq_len": seq, "visual": list(range(prefix, seq)), "span": [prefix, seq],
            "photo": list(photo.shape[:2]), "image_size": int(cfg.image_size), "patch_size": int(cfg.patch_size)}


def _scaled(layout: dict[str, Any], scale: int) -> dict[str, Any]:
    """The case `scale`× the real sequence: the image's span repeated (language models), or `scale` images in
    the batch (vision towers, which see each image on its own)."""
    seq, visual = layout["seq_len"], layout["visual"]
    if layout["part"] == "vision":
        return {"scale": scale, "batch": scale, "seq_len": seq, "visual": visual,
                "queries": list(range(min(QUERY_ROWS, seq)))}
    a, b = layout["span"]
    width = b - a
    keys = [p + j * width for j in range(scale) for p in visual]
    total = seq + (scale - 1) * width
    return {"scale": scale, "batch": 1, "seq_len": total, "visual": keys,
            "queries": list(range(total - QUERY_ROWS, total))}


def _shape(name: str, part: str) -> Any:
    from egokit.models.tiny import real_checkpoint

    checkpoint = real_checkpoint(name)
    return checkpoint.vision if part == "vision" else checkpoint.text


def _build_real_model(name: str, layout: dict[str, Any], layers: int, seed: int) -> Any:
    """A random model of checkpoint `name`'s language model (vision tower for CLIP/SigLIP) at real width,
    `layers` deep."""
    import transformers as tf

    shape = _shape(name, layout["part"])
    torch.manual_seed(seed)
    if layout["part"] == "vision":
        family = _VISION_ARCH[name]
        config_cls, model_cls = ((tf.CLIPVisionConfig, tf.CLIPVisionModel) if family == "clip"
                                 else (tf.SiglipVisionConfig, tf.SiglipVisionModel))
        cfg = config_cls(hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
                         num_hidden_layers=layers, num_attention_heads=shape.num_attention_heads,
                         image_size=layout["image_size"], patch_size=layout["patch_size"])
    else:
        arch = _LM_ARCH[name]
        config_cls, model_cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
                                 "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
                                 "gemma": (tf.GemmaConfig, tf.GemmaForCausalLM)}[arch]
        extra = {"head_dim": shape.head_dim} if shape.head_dim else {}
        cfg = config_cls(vocab_size=REAL_VOCAB, hidden_size=shape.hidden_size,
                         intermediate_size=shape.intermediate_size, num_hidden_layers=layers,
                         num_attention_heads=shape.num_attention_heads,
                         num_key_value_heads=shape.num_key_value_heads or shape.num_attention_heads,
                         max_position_embeddings=65536, tie_word_embeddings=True, **extra)
    cfg._attn_implementation = "sdpa"
    return model_cls(cfg).eval()


def _case_inputs(model: Any, layout: dict[str, Any], case: dict[str, Any], seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed + 1)
    if layout["part"] == "vision":
        size = layout["image_size"]
        return {"pixel_values": torch.randn(case["batch"], 3, size, size, generator=g)}
    embeds = torch.randn(1, case["seq_len"], model.config.hidden_size, generator=g) * 0.02
    return {"inputs_embeds": embeds, "logits_to_keep": 1, "use_cache": False}


def _dims(name: str, part: str) -> dict[str, int]:
    shape = _shape(name, part)
    heads = shape.num_attention_heads
    return {"hidden": shape.hidden_size, "heads": heads, "kv_heads": shape.num_key_value_heads or heads,
            "head_dim": shape.head_dim or shape.hidden_size // heads, "mlp": shape.intermediate_size}


def predicted_gflop(name: str, part: str, case: dict[str, Any], layers: int) -> float:
    """Floating-point work of one plain forward of a case (matrix products only), in GFLOP."""
    d = _dims(name, part)
    seq, batch = case["seq_len"], case["batch"]
    attn_width = d["heads"] * d["head_dim"]
    proj = 2 * d["hidden"] * attn_width + 2 * d["hidden"] * d["kv_heads"] * d["head_dim"]
    mlp = (2 if part == "vision" else 3) * d["hidden"] * d["mlp"]
    scores = (4 if part == "vision" else 2) * seq * seq * attn_width  # q·kᵀ and a·v; causal: half of them
    return batch * layers * (2 * seq * (proj + mlp) + scores) / 1e9


def _eager_gib(name: str, part: str, case: dict[str, Any], layers: int) -> float:
    """Rough peak of eager attention: every layer's float32 maps kept, plus two working copies."""
    d = _dims(name, part)
    one = case["batch"] * d["heads"] * case["seq_len"] ** 2 * 4
    return (layers + 2) * one / 2**30


def _warm_case(layout: dict[str, Any], case: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """A short version of `case` (language models: its first 32 positions) to warm every variant up on."""
    if layout["part"] == "vision":
        return {"inputs": {"pixel_values": inputs["pixel_values"][:1]}, "queries": case["queries"],
                "visual": case["visual"]}
    n = min(32, case["seq_len"])
    return {"inputs": {**inputs, "inputs_embeds": inputs["inputs_embeds"][:, :n]},
            "queries": list(range(n - min(QUERY_ROWS, n), n)), "visual": list(range(n // 2))}


def _real_memory_child(name: str, layout: dict[str, Any], cases: list[dict[str, Any]], layers: int, seed: int,
                       queue: Any) -> None:
    try:
        import egokit.capture.engine  # noqa: F401 - imported before the measurement starts

        model = _build_real_model(name, layout, layers, seed)
        out = []
        for i, case in enumerate(cases):
            inputs = _case_inputs(model, layout, case, seed)

            def go(v: str, inputs: dict[str, Any] = inputs, case: dict[str, Any] = case) -> Any:
                return _forward(model, v, inputs, case["queries"], case["visual"])

            if i == 0:  # warm-up, on a short sequence: one-off allocations (code, thread pools) are no variant's
                short = _warm_case(layout, case, inputs)
                for v in ("plain", "targeted", "eager"):
                    _forward(model, v, short["inputs"], short["queries"], short["visual"])
            go("plain")  # and on this case's shapes (per-shape buffers of the matrix kernels are no variant's)
            row: dict[str, Any] = {}
            row["plain_peak_mb"], _ = _peak_of(lambda go=go: go("plain"))
            row["targeted_peak_mb"], targeted = _peak_of(lambda go=go: go("targeted"))
            if case["eager"]:
                row["eager_peak_mb"], eager = _peak_of(lambda go=go: go("eager"))
                row["max_abs_diff"] = _diff(targeted, eager, case["queries"], case["visual"])
                del eager
            del targeted
            out.append(row)
        queue.put(out)
    except BaseException as e:  # reported in the parent
        queue.put(RuntimeError(f"memory measurement of {name} failed: {type(e).__name__}: {e}"))


def _real_family(name: str, scales: Sequence[int], layers: int, repeats: int, warmup: int, seed: int,
                 memory: bool, max_gflop: float, max_eager_gib: float) -> dict[str, Any]:
    from egokit.models.tiny import real_checkpoint

    layout = real_layout(name)
    part = layout["part"]
    d = _dims(name, part)
    shape = _shape(name, part)
    arch = _VISION_ARCH.get(name) or _LM_ARCH[name]
    entry: dict[str, Any] = {
        "checkpoint": real_checkpoint(name).checkpoint,
        "part": part,
        "model": (f"random {arch} {'vision tower' if part == 'vision' else 'language model'} with the "
                  f"checkpoint's {'vision' if part == 'vision' else 'language'} shape, cut in depth"),
        "layers": layers,
        "layers_real_model": shape.num_hidden_layers,
        "hidden_size": d["hidden"], "heads": d["heads"], "kv_heads": d["kv_heads"], "head_dim": d["head_dim"],
        "intermediate_size": d["mlp"],
        "photo": layout["photo"],
        "seq_len_one_image": layout["seq_len"],
        "visual_tokens_per_image": len(layout["visual"]),
        "scale_means": ("images in the batch (the tower sees each image on its own)" if part == "vision" else
                        "the image's span of the sequence repeated (several images, video frames)"),
        "queries": ("the first positions (class token first where there is one)" if part == "vision"
                    else f"the last {QUERY_ROWS} positions"),
        "cases": [],
    }
    model = None
    runnable = []
    for scale in scales:
        case = _scaled(layout, scale)
        gflop = predicted_gflop(name, part, case, layers)
        row: dict[str, Any] = {"scale": scale, "batch": case["batch"], "seq_len": case["seq_len"],
                               "visual_tokens": len(case["visual"]), "gflop_per_forward": round(gflop, 1)}
        entry["cases"].append(row)
        if gflop > max_gflop:
            row["skipped"] = (f"one plain forward is {gflop:.0f} GFLOP, above --max-gflop {max_gflop:g}; raise it "
                              f"to run this case")
            continue
        case["eager"] = _eager_gib(name, part, case, layers) <= max_eager_gib
        if model is None:
            model = _build_real_model(name, layout, layers, seed)
        inputs = _case_inputs(model, layout, case, seed)

        def go(v: str, model: Any = model, inputs: dict[str, Any] = inputs, case: dict[str, Any] = case) -> Any:
            return _forward(model, v, inputs, case["queries"], case["visual"])

        calls = {}
        for v in ("plain", "targeted"):  # the sdpa-path check, also the first warm-up round
            with sdpa_calls() as seen:
                go(v)
            calls[v] = seen
        times = time_rounds(go, ("plain", "targeted"), repeats, max(warmup - 1, 0))
        ratio, iqr = paired_ratio(times, "targeted", "plain")
        d_heads = _dims(name, part)["heads"] * case["batch"] * layers * 4
        row.update({"plain_s": statistics.median(times["plain"]), "targeted_s": statistics.median(times["targeted"]),
                    "targeted_over_plain": ratio, "targeted_over_plain_iqr": iqr,
                    "targeted_over_plain_of_minima": min(times["targeted"]) / min(times["plain"]),
                    "same_sdpa_path": calls["plain"] == calls["targeted"],
                    "attention_bytes": {"eager": d_heads * case["seq_len"] ** 2,
                                        "targeted": d_heads * len(case["queries"]) * len(case["visual"])}})
        if not case["eager"]:
            row["eager"] = (f"not run: eager attention would need about {_eager_gib(name, part, case, layers):.1f} "
                            f"GiB, above --max-eager-gib {max_eager_gib:g}")
        runnable.append((row, case))
    model = None  # free it before the memory run
    gc.collect()
    if memory and runnable:
        peaks = _spawn(_real_memory_child, name, layout, [c for _, c in runnable], layers, seed)
        for (row, case), peak in zip(runnable, peaks, strict=True):
            row.update(peak)
            if case["eager"]:
                extra_eager = row["eager_peak_mb"] - row["plain_peak_mb"]
                extra_targeted = row["targeted_peak_mb"] - row["plain_peak_mb"]
                if extra_eager >= RSS_RESOLUTION_MB:
                    row["targeted_extra_over_eager_extra"] = extra_targeted / extra_eager
                else:
                    row["targeted_extra_over_eager_extra"] = None
                    row["memory_note"] = (f"eager adds {extra_eager:.2f} MiB of peak RSS, below the {RSS_RESOLUTION_MB:g} "
                                          "MiB that RSS resolves; attention_bytes gives the exact tensor sizes")
    return entry


def _summary(families: dict[str, dict[str, Any]], memory: bool) -> dict[str, Any]:
    """Worst ratios at each checkpoint's real length, against the targets, and where a target is not met."""
    time_worst: float | None = None
    memory_worst: float | None = None
    misses: list[str] = []
    notes: list[str] = []
    for name, entry in families.items():
        real = next((c for c in entry["cases"] if c["scale"] == 1), None)
        if real is None or "skipped" in real:
            misses.append(f"{name}: real length not run ({real['skipped'] if real else 'scale 1 not asked for'})")
            continue
        t = real["targeted_over_plain"]
        time_worst = t if time_worst is None else max(time_worst, t)
        if t > TIME_TARGET:
            misses.append(f"{name}: targeted / plain time {t:.3f} > {TIME_TARGET}")
        m = real.get("targeted_extra_over_eager_extra")
        if memory and m is None and "memory_note" in real:
            b = real["attention_bytes"]
            m = b["targeted"] / b["eager"]
            notes.append(f"{name}: memory ratio from attention tensor bytes ({m:.3f}): {real['memory_note']}")
        if memory and m is None:
            misses.append(f"{name}: no memory ratio at the real length")
        elif m is not None:
            memory_worst = m if memory_worst is None else max(memory_worst, m)
            if m > MEMORY_TARGET:
                misses.append(f"{name}: targeted extra / eager extra memory {m:.3f} > {MEMORY_TARGET}")
    return {"targets": {"targeted_over_plain": TIME_TARGET, "targeted_extra_over_eager_extra": MEMORY_TARGET},
            "worst_targeted_over_plain_at_real_length": time_worst,
            "worst_targeted_extra_over_eager_extra_at_real_length": memory_worst,
            "met": not misses, "misses": misses, "notes": notes}


def run_real_benchmark(names: Sequence[str] | None = None, scales: Sequence[int] = REAL_DEFAULTS["scales"],
                       layers: int = REAL_DEFAULTS["layers"], repeats: int = REAL_DEFAULTS["repeats"],
                       warmup: int = REAL_DEFAULTS["warmup"], seed: int = 0, memory: bool = True,
                       max_gflop: float = REAL_DEFAULTS["max_gflop"],
                       max_eager_gib: float = REAL_DEFAULTS["max_eager_gib"]) -> dict[str, Any]:
    """Plain vs targeted capture (time) and plain vs targeted vs eager (peak memory) at each real checkpoint's
    sequence length for one real photo, and at `scales` times it; JSON-able."""
    all_names = real_names()
    chosen = list(names) if names else all_names
    unknown = [n for n in chosen if n not in all_names]
    if unknown:
        raise ValueError(f"unknown checkpoint name {', '.join(unknown)}; choose from {', '.join(all_names)}")
    load_before = _load()
    warmup = max(warmup, 1)  # the first warm-up round also records each variant's sdpa call
    started = time.perf_counter()
    families = {name: _real_family(name, scales, layers, repeats, warmup, seed, memory, max_gflop, max_eager_gib)
                for name in chosen}
    return {
        "geometry": "real",
        "device": "cpu",
        "gpu": GPU_NOTE,
        "photo": "skimage.data.astronaut() (512x512)",
        "layers": layers,
        "scales": list(scales),
        "repeats": repeats,
        "warmup": warmup,
        "order": "rotating rounds",
        "plain_path": "sdpa",
        "query_rows": QUERY_ROWS,
        "threads": torch.get_num_threads(),
        "max_gflop": max_gflop,
        "max_eager_gib": max_eager_gib,
        "vocab_size": REAL_VOCAB,
        "families": families,
        "summary": _summary(families, memory),
        "wall_s": round(time.perf_counter() - started, 1),
        "load_before": load_before,
        "load_after": _load(),
    }


if __name__ == "__main__":
    print(json.dumps(run_capture_benchmark(), indent=2))
