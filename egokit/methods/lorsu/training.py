"""What every continual-learning method here shares: session data, the model's vision side (found through
its family: `dual_encoder`, `vision_blocks`, `vision_parameters`, `image_projection_name`), the CLIP
contrastive loss against class-name captions, the mean session gradient, and one training loop (Adam) with
honest accounting of trainable parameters, optimizer memory and time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from egokit.errors import CapabilityError, InputError, ModelLoadError
from egokit.models.adapters.base import DUAL_ENCODER, WRAPPABLE_VIT
from egokit.models.loading import LoadedModel, from_model


@dataclass
class SessionData:
    """The few-shot data of one session: images, their class, and one caption per class.

    pixel_values: (N, 3, H, W) float, as the model's image processor makes them.
    labels:       (N,) long, index into `class_texts`.
    class_texts:  the caption of each class ("a photo of a pink object .").
    text_inputs:  the tokenized `class_texts` (`input_ids`, `attention_mask`).
    name:         a label for reports ("pink").
    text_embeddings: optional cached L2-normalised class-caption embeddings (C, D). Every method here keeps
                  the text side frozen, so they may be computed once (`class_embeddings(clip, data, cache=True)`).
    """

    pixel_values: torch.Tensor
    labels: torch.Tensor
    class_texts: list[str]
    text_inputs: dict[str, torch.Tensor]
    name: str = ""
    text_embeddings: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.pixel_values.ndim != 4 or self.pixel_values.shape[0] == 0:
            raise InputError(f"pixel_values must be (N, 3, H, W) with N >= 1, got {tuple(self.pixel_values.shape)}")
        if self.labels.shape != (self.pixel_values.shape[0],):
            raise InputError(f"need one label per image: {self.labels.shape[0]} labels for "
                             f"{self.pixel_values.shape[0]} images")
        if int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_texts):
            raise InputError(f"labels must index class_texts (0..{len(self.class_texts) - 1})")

    def __len__(self) -> int:
        return int(self.pixel_values.shape[0])

    @classmethod
    def from_images(cls, processor: Any, images: Sequence[Any], labels: Sequence[int],
                    class_texts: Sequence[str], name: str = "") -> SessionData:
        """Build session data with a CLIP processor from images (arrays or PIL) and integer labels."""
        if len(images) != len(labels):
            raise InputError(f"{len(images)} images but {len(labels)} labels")
        if not class_texts:
            raise InputError("class_texts is empty: give one caption per class")
        pixels = processor(images=list(images), return_tensors="pt")["pixel_values"]
        text = processor.tokenizer(list(class_texts), padding=True, return_tensors="pt")
        return cls(pixel_values=pixels.float(), labels=torch.as_tensor(list(labels), dtype=torch.long),
                   class_texts=list(class_texts),
                   text_inputs={k: v for k, v in text.items() if k in ("input_ids", "attention_mask")}, name=name)


# ---------------------------------------------------------------------------------------------- model parts


def dual_encoder(model: Any, processor: Any = None) -> LoadedModel:
    """`model` as a `LoadedModel` whose family LoRSU can work on: a dual encoder (image and text embeddings
    in one space) with a wrappable ViT vision tower. `model` is a `LoadedModel` or a transformers model in
    memory (then wrapped with `processor`); anything else is one clear error (`CapabilityError` for a
    family without those capabilities, `InputError` for something that is no transformers model)."""
    if isinstance(model, LoadedModel):
        loaded = model
    else:
        if getattr(getattr(model, "config", None), "model_type", None) is None:
            raise InputError(f"LoRSU needs a CLIP-style dual encoder, got {type(model).__name__}; load one "
                             "with egokit.load('micro-clip') or a CLIP checkpoint")
        loaded = from_model(model, processor)
    loaded.adapter.require(DUAL_ENCODER, "LoRSU")
    loaded.adapter.require(WRAPPABLE_VIT, "LoRSU")
    return loaded


def vision_blocks(model: Any) -> list[nn.Module]:
    """The transformer blocks of the vision encoder, as the model's family finds them."""
    return list(dual_encoder(model).adapter.module("vision_blocks"))


def block_names(model: Any, pieces: Sequence[str]) -> list[dict[str, str]]:
    """Per vision block, the dotted name (under the model) of each of `pieces` ("q", "fc1", ...)."""
    pieces = tuple(pieces)
    flat = dual_encoder(model).adapter.block_module_names("vision_blocks", pieces)
    return [dict(zip(pieces, flat[i:i + len(pieces)])) for i in range(0, len(flat), len(pieces))]


def image_projection_name(model: Any) -> str | None:
    """The dotted name (under the model) of the linear map from the vision tower into the joint space, or
    None when the model has none."""
    adapter = dual_encoder(model).adapter
    try:
        return adapter.module_name("image_projection")
    except (CapabilityError, ModelLoadError):
        return None


def vision_parameters(model: Any) -> list[nn.Parameter]:
    """Every parameter of the vision side: the vision tower and the image projection (when there is one)."""
    loaded = dual_encoder(model)
    params = list(loaded.adapter.module("vision").parameters())
    proj = image_projection_name(loaded)
    if proj is not None:
        params += list(loaded.model.get_submodule(proj).parameters())
    return params


def vision_dtype(model: Any) -> torch.dtype:
    """The dtype of the vision tower's weights (what pixel values are cast to)."""
    return next(dual_encoder(model).adapter.module("vision").parameters()).dtype


@contextlib.contextmanager
def trainable_only(model: nn.Module, params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Inside the block, only `params` require gradients; flags and train/eval mode are restored after."""
    saved = {id(p): p.requires_grad for p in model.parameters()}
    was_training = model.training
    keep = {id(p) for p in params}
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
        for p in params:  # wrappers' own parameters may not be registered yet when flags were saved
            p.requires_grad_(True)
        yield
    finally:
        for p in model.parameters():
            if id(p) in saved:
                p.requires_grad_(saved[id(p)])
        model.train(was_training)


# ---------------------------------------------------------------------------------------------- loss


@torch.no_grad()
def class_embeddings(clip: nn.Module, data: SessionData, cache: bool = False) -> torch.Tensor:
    """L2-normalised text embeddings of the session's class captions (the text side is frozen).

    Uses `data.text_embeddings` when set; `cache=True` stores the result there."""
    dev = next(clip.parameters()).device
    if data.text_embeddings is not None:
        return data.text_embeddings.to(dev)
    out = clip.get_text_features(**{k: v.to(dev) for k, v in data.text_inputs.items()})
    emb = F.normalize((out.pooler_output if hasattr(out, "pooler_output") else out).float(), dim=-1)
    if cache:
        data.text_embeddings = emb
    return emb


def image_embeddings(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """L2-normalised image embeddings (with gradients when enabled) of `model` (a dual encoder or a
    `LoadedModel` of one)."""
    loaded = dual_encoder(model)
    clip = loaded.model
    dev = next(clip.parameters()).device
    dtype = next(loaded.adapter.module("vision").parameters()).dtype
    out = clip.get_image_features(pixel_values=pixel_values.to(dev, dtype))
    emb = out.pooler_output if hasattr(out, "pooler_output") else out
    return F.normalize(emb.float(), dim=-1)


#: the losses `contrastive_loss` knows: egokit's over the class captions, or the official code's over pairs
LOSSES: tuple[str, ...] = ("classes", "pairs")


def contrastive_loss(clip: nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor,
                     text_emb: torch.Tensor, loss: str = "classes") -> torch.Tensor:
    """The symmetric CLIP loss between images and their class captions.

    "classes" (egokit's): image → text is a cross-entropy over the session's class captions; text → image,
    for every class present in the batch, a cross-entropy over the batch's images with the target spread
    evenly over that class's images. "pairs" (the official code's `ClipLoss`): each image is paired with its
    own caption and every other pair of the batch is a negative, also another image of the same class.
    Logits use the model's own (frozen) temperature.
    """
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}")
    img = image_embeddings(clip, pixel_values)
    scale = clip.logit_scale.exp().clamp(max=100.0).float() if hasattr(clip, "logit_scale") else 100.0
    labels = labels.to(img.device)
    if loss == "pairs":
        pair_logits = scale * img @ text_emb[labels].t()  # (B, B)
        target = torch.arange(len(labels), device=img.device)
        return 0.5 * (F.cross_entropy(pair_logits, target) + F.cross_entropy(pair_logits.t(), target))
    logits = scale * img @ text_emb.t()  # (B, C)
    i2t = F.cross_entropy(logits, labels)
    present = torch.unique(labels)
    onehot = (labels[:, None] == present[None, :]).float()  # (B, P)
    t2i = -(F.log_softmax(logits[:, present], dim=0) * onehot / onehot.sum(0, keepdim=True)).sum(0).mean()
    return 0.5 * (i2t + t2i)


def batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Index batches over n items (shuffled when a generator is given)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def mean_gradients(clip: nn.Module, data: SessionData, params: dict[str, nn.Parameter],
                   batch_size: int = 64, loss: str = "classes") -> dict[str, torch.Tensor]:
    """The mean gradient of `contrastive_loss` over the session's data, for each named parameter."""
    text_emb = class_embeddings(clip, data)
    total = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in params.items()}
    with trainable_only(clip, list(params.values())):
        for idx in batches(len(data), batch_size):
            for p in params.values():
                p.grad = None
            value = contrastive_loss(clip, data.pixel_values[idx], data.labels[idx], text_emb, loss)
            value.backward()
            for k, p in params.items():
                if p.grad is not None:
                    total[k] += p.grad.float() * len(idx)
        for p in params.values():
            p.grad = None
    return {k: v / len(data) for k, v in total.items()}


# ---------------------------------------------------------------------------------------------- training


@dataclass
class TrainStats:
    """What one session's training cost: losses per epoch, trainable parameters and optimizer memory."""

    losses: list[float] = field(default_factory=list)
    trainable_params: int = 0
    optimizer_bytes: int = 0


def optimizer_state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's state tensors (Adam: two moments per trainable entry, plus steps)."""
    total = 0
    for state in opt.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                total += v.numel() * v.element_size()
    return total


def train(clip: nn.Module, data: SessionData, params: Sequence[nn.Parameter], *, epochs: int, lr: float,
          batch_size: int = 32, seed: int = 0, grad_hook: Any = None, progress: bool = False, loss: str = "classes",
          weight_decay: float = 0.0) -> TrainStats:
    """Adam on `params` only (everything else frozen) for `epochs` passes over the session's data.

    grad_hook: optional callable run after each backward pass (before the step), e.g. to mask gradients.
    loss: "classes" or "pairs" (`contrastive_loss`). weight_decay > 0: AdamW with that decoupled decay (the
    official LoRSU trainer's 0.01) instead of Adam.
    """
    params = [p for p in params]
    if not params:
        raise InputError("nothing to train: the method chose no parameters")
    if epochs < 0 or lr <= 0:
        raise InputError(f"need epochs >= 0 and lr > 0, got epochs={epochs}, lr={lr}")
    text_emb = class_embeddings(clip, data)
    if weight_decay < 0:
        raise InputError(f"weight_decay must be >= 0, got {weight_decay}")
    opt = (torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if weight_decay > 0
           else torch.optim.Adam(params, lr=lr))
    gen = torch.Generator().manual_seed(int(seed))
    stats = TrainStats(trainable_params=int(sum(p.numel() for p in params)))
    epochs_iter: Any = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc=data.name or "session", leave=False)
    with trainable_only(clip, params):
        clip.train()
        for _ in epochs_iter:
            seen, total = 0, 0.0
            for idx in batches(len(data), batch_size, gen):
                value = contrastive_loss(clip, data.pixel_values[idx], data.labels[idx], text_emb, loss)
                opt.zero_grad(set_to_none=True)
                value.backward()
                if grad_hook is not None:
                    grad_hook()
                opt.step()
                seen += len(idx)
                total += float(value.detach()) * len(idx)
            stats.losses.append(total / max(seen, 1))
    stats.optimizer_bytes = optimizer_state_bytes(opt)
    for p in params:
        p.grad = None
    return stats


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of (N, C) logits."""
    if labels.numel() == 0:
        return float("nan")
    return float((logits.argmax(-1).cpu() == labels.cpu()).float().mean())


def to_numpy_images(images: Sequence[Any]) -> list[np.ndarray]:
    """Images as uint8 arrays (what the processor is fed)."""
    return [np.asarray(im, dtype=np.uint8) for im in images]


__all__ = [
    "LOSSES", "SessionData", "TrainStats", "accuracy", "batches", "block_names", "class_embeddings", "contrastive_loss",
    "dual_encoder", "image_embeddings", "image_projection_name", "mean_gradients", "optimizer_state_bytes", "train",
    "trainable_only", "vision_blocks", "vision_dtype", "vision_parameters",
]
