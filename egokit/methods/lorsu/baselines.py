"""The methods LoRSU is compared with, on the same session data, loss, optimizer (Adam) and epochs.

- `full`:      every parameter of the vision encoder and the image projection.
- `lora`:      LoRA through `peft` on q/k/v/out projections, fc1 and fc2 of every vision block and on the
               image projection (the paper's LoRA baseline adapts the vision encoder's attention and MLP
               layers; `lora_targets` names them, as the model's family finds them); merged into the
               weights after each session.
- `spu`:       SPU (selective parameter update): only the top-`sparsity` fc1 weights by |mean gradient|,
               i.e. LoRSU without the attention part.
- `layernorm`: only the LayerNorm weights and biases of the vision encoder.

Every function has the signature of `lorsu.update` minus the LoRSU-only options, changes the model in
place and returns a `SessionReport`. `METHODS` maps names to them (with `lorsu` and its three ablations:
`random_heads`, `unmasked_fc1`, and `lora_v1`, the earlier egokit LoRA shape and initialisation with fc1's
bias frozen).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import egokit.methods.lorsu.session as lorsu
from egokit.methods.lorsu.modules import Patch, SparseDeltaLinear, install, merge_all, remove_all
from egokit.methods.lorsu.session import SessionReport
from egokit.methods.lorsu.training import (
    SessionData,
    block_names,
    dual_encoder,
    image_projection_name,
    mean_gradients,
    train,
    vision_blocks,
    vision_parameters,
)

#: the pieces of every vision block the LoRA baseline adapts (with the image projection).
LORA_PIECES: tuple[str, ...] = ("q", "k", "v", "out", "fc1", "fc2")


def lora_targets(model: Any) -> list[str]:
    """The names (as `model.named_modules()` spells them) of the modules the LoRA baseline adapts: the
    `LORA_PIECES` of every vision block, then the image projection when the model has one."""
    names = dual_encoder(model).adapter.block_module_names("vision_blocks", LORA_PIECES)
    projection = image_projection_name(model)
    return names + ([projection] if projection is not None else [])


def _report(method: str, data: SessionData, stats: Any, start: float, settings: dict[str, Any],
            **extra: Any) -> SessionReport:
    return SessionReport(method=method, trainable_params=stats.trainable_params,
                         optimizer_bytes=stats.optimizer_bytes, seconds=time.perf_counter() - start,
                         losses=stats.losses, session=data.name, settings=settings, **extra)


def update_full(clip_model: Any, session_data: SessionData, *, epochs: int, lr: float, batch_size: int = 32,
                seed: int = 0, progress: bool = False, **_: Any) -> SessionReport:
    """Full fine-tuning of the vision encoder (and image projection)."""
    loaded = dual_encoder(clip_model)
    start = time.perf_counter()
    stats = train(loaded.model, session_data, vision_parameters(loaded), epochs=epochs, lr=lr, batch_size=batch_size,
                  seed=seed, progress=progress)
    return _report("full", session_data, stats, start, {"epochs": epochs, "lr": lr, "batch_size": batch_size})


def update_layernorm(clip_model: Any, session_data: SessionData, *, epochs: int, lr: float, batch_size: int = 32,
                     seed: int = 0, progress: bool = False, **_: Any) -> SessionReport:
    """LayerNorm tuning: only the vision encoder's LayerNorm scales and shifts."""
    loaded = dual_encoder(clip_model)
    start = time.perf_counter()
    vision = loaded.adapter.module("vision")
    params = [p for m in vision.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()]
    stats = train(loaded.model, session_data, params, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                  progress=progress)
    return _report("layernorm", session_data, stats, start, {"epochs": epochs, "lr": lr, "batch_size": batch_size})


def update_spu(clip_model: Any, session_data: SessionData, *, epochs: int, lr: float, sparsity: float = 0.1,
               batch_size: int = 32, seed: int = 0, progress: bool = False, **_: Any) -> SessionReport:
    """SPU: the top-`sparsity` fc1 weights of every block by |mean gradient|, nothing else."""
    loaded = dual_encoder(clip_model)
    clip, adapter = loaded.model, loaded.adapter
    start = time.perf_counter()
    blocks = vision_blocks(loaded)
    names = block_names(loaded, ("fc1",))
    fc1 = [adapter.block_module(b, "fc1") for b in blocks]
    grads = mean_gradients(clip, session_data, {str(i): f.weight for i, f in enumerate(fc1)},
                           batch_size=max(batch_size, 64))
    patches: list[Patch] = []
    params, masks = [], []
    try:
        for i, f in enumerate(fc1):
            mask = lorsu.top_fraction_mask(grads[str(i)], sparsity)
            wrapper = SparseDeltaLinear(f, mask.reshape(-1).nonzero().squeeze(1))
            patches.append(install(clip, names[i]["fc1"], wrapper))
            params.append(wrapper.delta)
            masks.append(mask.cpu())
        stats = train(clip, session_data, params, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                      progress=progress)
        merge_all(patches)
    finally:
        remove_all(patches)
    return _report("spu", session_data, stats, start,
                   {"epochs": epochs, "lr": lr, "batch_size": batch_size, "sparsity": sparsity},
                   fc1_chosen=[int(m.sum()) for m in masks], fc1_masks=torch.stack(masks))


def update_lora(clip_model: Any, session_data: SessionData, *, epochs: int, lr: float, rank: int = 8,
                alpha: float = 8.0, batch_size: int = 32, seed: int = 0, progress: bool = False,
                **_: Any) -> SessionReport:
    """LoRA (peft) on the vision encoder's attention and MLP layers and the image projection (the modules
    `lora_targets` names); merged after."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    loaded = dual_encoder(clip_model)
    clip = loaded.model
    start = time.perf_counter()
    targets = lora_targets(loaded)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", target_modules=targets)
    saved = {id(p): p.requires_grad for p in clip.parameters()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        inject_adapter_in_model(config, clip)
    try:
        params = [p for n, p in clip.named_parameters() if "lora_" in n]
        stats = train(clip, session_data, params, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                      progress=progress)
        _unload(clip, LoraLayer, merge=True)
    finally:
        _unload(clip, LoraLayer, merge=False)
        if hasattr(clip, "peft_config"):  # left by inject_adapter_in_model; the next session starts afresh
            del clip.peft_config
        for p in clip.parameters():
            p.requires_grad_(saved.get(id(p), p.requires_grad))
    return _report("lora", session_data, stats, start,
                   {"epochs": epochs, "lr": lr, "batch_size": batch_size, "rank": rank, "alpha": alpha,
                    "targets": targets})


def _unload(model: nn.Module, lora_layer: type, merge: bool) -> None:
    """Replace every peft LoRA layer by its base layer (after merging it when `merge`)."""
    for name, module in list(model.named_modules()):
        if not isinstance(module, lora_layer):
            continue
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        if merge:
            module.merge()
        setattr(parent, name.rpartition(".")[2], module.get_base_layer())


def _lorsu(clip_model: Any, session_data: SessionData, **kw: Any) -> SessionReport:
    return lorsu.update(clip_model, session_data, **kw)


def _random_heads(clip_model: Any, session_data: SessionData, **kw: Any) -> SessionReport:
    return lorsu.update(clip_model, session_data, heads="random", **kw)


def _unmasked_fc1(clip_model: Any, session_data: SessionData, **kw: Any) -> SessionReport:
    return lorsu.update(clip_model, session_data, mask_fc1=False, **kw)


def _lora_v1(clip_model: Any, session_data: SessionData, **kw: Any) -> SessionReport:
    return lorsu.update(clip_model, session_data, lora_init="egokit-v1", **kw)


#: name → session update function (all take `(model, data, **settings)`).
METHODS: dict[str, Callable[..., SessionReport]] = {
    "lorsu": _lorsu,
    "full": update_full,
    "lora": update_lora,
    "spu": update_spu,
    "layernorm": update_layernorm,
    "random_heads": _random_heads,
    "unmasked_fc1": _unmasked_fc1,
    "lora_v1": _lora_v1,
}

__all__ = ["LORA_PIECES", "METHODS", "lora_targets", "update_full", "update_layernorm", "update_lora", "update_spu"]
