"""Training and scoring of prompt-tuned classifiers (SA²VP and the baselines) on a frozen backbone.

Any model with `loss(pixel_values, labels)`, `predict_logits(pixel_values)` and trainable parameters
works. Training is Adam with a linear warm-up and cosine decay, deterministic given the seed (batch
order from a seeded generator, parameters initialised under `torch.manual_seed`), with a tqdm bar.
Models with `cacheable = True` (the linear probe) are trained on their frozen features, computed once.
Models with `frozen_states` (SA²VP) get the part of their forward that nothing trained changes computed
once per training image (when it fits in `CACHE_BYTES`): the same losses, without recomputing it every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from egokit.errors import InputError

#: The most memory the frozen states of a training set may take before `fit` recomputes them every step.
CACHE_BYTES = 2 * 1024 ** 3
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TrainSettings:
    """epochs, batch, lr (peak, after `warmup` of the steps), weight decay, seed; `probe_epochs` for the
    linear probe on cached features (cheap, so it gets more)."""

    epochs: int = 4
    batch: int = 16
    lr: float = 1e-2
    warmup: float = 0.1
    weight_decay: float = 0.0
    seed: int = 0
    probe_epochs: int = 60


def to_pixels(images: np.ndarray | Sequence[np.ndarray], processor: Any = None) -> torch.Tensor:
    """(N, H, W, 3) uint8 images → (N, 3, H, W) float32 pixel values for the model.

    With a processor (or image processor), its own resizing and normalisation are used; without one,
    images are scaled to [0, 1] and normalised with CLIP's mean and std."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"expected (N, H, W, 3) images, got shape {images.shape}")
    image_processor = getattr(processor, "image_processor", processor)
    if image_processor is not None:
        out = image_processor(images=list(images), return_tensors="pt")
        return out["pixel_values"].float()
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _batches(n: int, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i:i + batch] for i in range(0, n, batch)]


def fit(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, settings: TrainSettings = TrainSettings(),
        desc: str = "train", progress: bool = True,
        on_epoch: Callable[[int, nn.Module], None] | None = None) -> list[float]:
    """Train `model`'s trainable parameters; return the loss of every step. `on_epoch(epoch, model)` is
    called after each epoch (e.g. to follow a validation accuracy)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError("the model has no trainable parameters")
    device = next(model.parameters()).device
    labels = labels.to(device)
    inputs, loss_fn = pixels, model.loss
    epochs, batch = settings.epochs, settings.batch
    if getattr(model, "cacheable", False):
        inputs = features(model, pixels, settings.batch * 4)
        head = model.head

        def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(head(x), y)

        epochs = settings.probe_epochs
        batch = max(batch, 128)
    elif hasattr(model, "frozen_states") and _fits(model, pixels):
        inputs = frozen_states(model, pixels, settings.batch * 4)

        def loss_fn(states: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return model.loss(None, y, states=states)
    gen = torch.Generator().manual_seed(settings.seed)
    steps_per_epoch = math.ceil(len(labels) / batch)
    total = epochs * steps_per_epoch
    warmup = max(1, round(settings.warmup * total))
    opt = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    losses: list[float] = []
    model.train()
    with tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(epochs):
            for idx in _batches(len(labels), batch, gen):
                for group in opt.param_groups:
                    group["lr"] = settings.lr * _lr_factor(len(losses), total, warmup)
                loss = loss_fn(inputs[idx].to(device), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                bar.update(1)
                if len(losses) % 10 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
            if on_epoch is not None:
                on_epoch(epoch, model)
                model.train()
    model.eval()
    return losses


@torch.no_grad()
def features(model: nn.Module, pixels: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """`model.features` over a data set in batches."""
    device = next(model.parameters()).device
    return torch.cat([model.features(pixels[i:i + batch].to(device)) for i in range(0, len(pixels), batch)])


def _fits(model: nn.Module, pixels: torch.Tensor) -> bool:
    """Whether the frozen states of every image fit in `CACHE_BYTES`."""
    one = model.frozen_states(pixels[:1].to(next(model.parameters()).device))
    return one.numel() * one.element_size() * len(pixels) <= CACHE_BYTES


@torch.no_grad()
def frozen_states(model: nn.Module, pixels: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """`model.frozen_states` over a data set in batches."""
    device = next(model.parameters()).device
    return torch.cat([model.frozen_states(pixels[i:i + batch].to(device)) for i in range(0, len(pixels), batch)])


@torch.no_grad()
def predict(model: nn.Module, pixels: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Predicted class of every image (base pathway for SA²VP)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.predict_logits(pixels[i:i + batch].to(device)).argmax(-1).cpu()
                      for i in range(0, len(pixels), batch)])


def accuracy(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, batch: int = 128) -> float:
    return float((predict(model, pixels, batch) == labels.cpu()).float().mean())
