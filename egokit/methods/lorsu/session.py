"""LoRSU: fix an imperfect CLIP vision encoder with sparse, structured updates (one continual session).

Panos et al., "Efficient Few-Shot Continual Learning in Vision-Language Models" (TMLR 2025). In one
session, on the vision side only (text encoder, text projection and temperature frozen):

1. the mean gradient of the CLIP contrastive loss (image vs class caption) over the session's data;
2. MLP: in every block's fc1, the top `sparsity` fraction of individual weights by |mean gradient|
   (exactly ``round(sparsity · numel)`` entries) is trainable, nothing else of that matrix;
3. heads: score = squared norm of the head's q, k and v mean-gradient rows; the `top_heads` best
   heads per block are chosen;
4. a masked LoRA on the q, k and v projections that changes only the chosen heads' output rows, shaped
   as the official code shapes it (one update of the stacked q/k/v weight: A on the output side,
   Kaiming-uniform, one zero-initialised B shared by q, k and v; ΔW = (α/r)·M ⊙ (A·B)); the q/k/v biases
   and fc1's bias are trainable (densely); a plain LoRA on the image projection (into the joint space);
5. Adam for `epochs` passes; then every update is merged into the weights, so the next session starts
   from the merged model with fresh masks.

    lm = egokit.load("micro-clip")
    report = egokit.lorsu.update(lm, session_data)        # changes lm.model's vision encoder in place
    report.heads            # chosen heads per block;  report.fc1_chosen: chosen fc1 weights per block

The model's parts are found through its family (`lm.adapter`), so any family with the capabilities
DUAL_ENCODER and WRAPPABLE_VIT works. The baselines (full fine-tuning, LoRA, SPU, LayerNorm) are in
`egokit.methods.lorsu.baselines`; the continual protocol on ShapesWorld and its metrics (TI, CC) in
`egokit.methods.lorsu.evaluation`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import nn

from egokit.errors import InputError
from egokit.methods.lorsu.modules import (
    LORA_INITS,
    Patch,
    RowLoRALinear,
    SharedLoRALinear,
    SparseDeltaLinear,
    StackedLoRA,
    install,
    merge_all,
    remove_all,
)
from egokit.methods.lorsu.training import (
    SessionData,
    block_names,
    dual_encoder,
    image_projection_name,
    mean_gradients,
    train,
    vision_blocks,
)
from egokit.results import Result

#: Defaults sized for the micro CLIP (width 128, 4 heads). The paper's README uses rank 64 on width-1024
#: ViT-L (rank = width/16); rank 8 keeps that ratio here. The learning rate was chosen on development seeds
#: (the grid and the measurements: `egokit.methods.lorsu.evaluation.Settings`, whose LoRSU rate is this one).
DEFAULTS: dict[str, Any] = {"sparsity": 0.1, "top_heads": 2, "rank": 8, "alpha": 8.0, "epochs": 20, "lr": 3e-4}


#: the attention projections whose chosen heads get a masked LoRA
QKV: tuple[str, ...] = ("q", "k", "v")


@dataclass(repr=False)
class SessionReport(Result):
    """What one session of a method did and cost (a `Result`: `to_dict`, `save`/`load`, a picture).

    method:           "lorsu", "full", "lora", "spu", "layernorm" or an ablation name.
    trainable_params: entries the optimizer updates (LoRSU: chosen fc1 entries + fc1 biases + LoRA factors
                      + q/k/v biases + projection LoRA).
    optimizer_bytes:  bytes of optimizer state (Adam moments) after the session.
    seconds:          wall time of the session (scores, masks, training, merge).
    heads:            per vision block, the chosen heads (LoRSU; empty otherwise).
    head_scores:      per block, every head's score (squared norm of its q/k/v mean-gradient rows).
    fc1_chosen:       per block, how many fc1 weights were trainable.
    fc1_masks:        (blocks, out, in) bool masks of the chosen fc1 weights, or None.
    losses:           mean training loss per epoch.
    settings:         the hyper-parameters used.
    """

    method: str
    trainable_params: int
    optimizer_bytes: int
    seconds: float
    heads: list[list[int]] = field(default_factory=list)
    head_scores: list[list[float]] = field(default_factory=list)
    fc1_chosen: list[int] = field(default_factory=list)
    fc1_masks: torch.Tensor | None = None
    losses: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    session: str = ""

    FILE_KIND: ClassVar[str] = "egokit.lorsu_session_report"
    FILE_VERSION: ClassVar[int] = 1
    FILE_WHAT: ClassVar[str | None] = "LoRSU session report"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (masks left out; `fc1_chosen` counts them)."""
        return {"method": self.method, "session": self.session, "trainable_params": self.trainable_params,
                "optimizer_bytes": self.optimizer_bytes, "seconds": self.seconds, "heads": self.heads,
                "head_scores": self.head_scores, "fc1_chosen": self.fc1_chosen, "losses": self.losses,
                "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], fc1_masks: torch.Tensor | None = None) -> SessionReport:
        """The report `to_dict` describes, with its chosen-fc1 masks (`fc1_masks`, any dtype; stored as bool)."""
        return cls(method=str(d["method"]), trainable_params=int(d["trainable_params"]),
                   optimizer_bytes=int(d["optimizer_bytes"]), seconds=float(d["seconds"]),
                   heads=[[int(h) for h in b] for b in d["heads"]],
                   head_scores=[[float(s) for s in b] for b in d["head_scores"]],
                   fc1_chosen=[int(c) for c in d["fc1_chosen"]],
                   fc1_masks=None if fc1_masks is None else fc1_masks.bool(), losses=[float(x) for x in d["losses"]],
                   settings=dict(d["settings"]), session=str(d.get("session", "")))

    def _file_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.fc1_masks is None else {"fc1_masks": self.fc1_masks.to(torch.uint8)}

    @classmethod
    def _from_file(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> SessionReport:
        return cls.from_dict(meta, tensors.get("fc1_masks"))

    def to_image(self) -> Image.Image:
        """The loss per epoch and, where the method chose them, the head scores with the chosen heads and
        the share of each fc1 neuron's weights chosen, per vision block."""
        from egokit.methods.lorsu.render import report_picture

        return report_picture(self)

    def __repr__(self) -> str:
        heads = f", heads={self.heads}" if self.heads else ""
        return (f"SessionReport({self.method!r}, session={self.session!r}, trainable={self.trainable_params}, "
                f"optimizer_bytes={self.optimizer_bytes}, seconds={self.seconds:.2f}{heads})")


# ---------------------------------------------------------------------------------------------- masks


def top_fraction_mask(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """A bool mask (shape of `scores`) keeping exactly ``round(fraction · numel)`` entries with the
    largest |score| (at least one when fraction > 0). Ties are broken by `torch.topk`."""
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"sparsity must be in (0, 1], got {fraction}")
    flat = scores.detach().abs().reshape(-1)
    k = max(1, int(round(fraction * flat.numel())))
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.view_as(scores)


def head_scores(q_grad: torch.Tensor, k_grad: torch.Tensor, v_grad: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Per head, the squared Frobenius norm of its rows in the q, k and v mean-gradient matrices."""
    out = q_grad.shape[0]
    if out % n_heads:
        raise InputError(f"{out} output rows do not split into {n_heads} heads")
    stacked = torch.stack([q_grad, k_grad, v_grad]).float()  # (3, out, in)
    return stacked.reshape(3, n_heads, out // n_heads, -1).square().sum(dim=(0, 2, 3))


def choose_heads(scores: torch.Tensor, k: int, how: str = "gradient",
                 generator: torch.Generator | None = None) -> list[int]:
    """The `k` heads with the highest scores ("gradient") or `k` heads drawn at random ("random")."""
    n = scores.numel()
    if not 0 <= k <= n:
        raise InputError(f"top_heads must be between 0 and {n} (heads per block), got {k}")
    if how == "gradient":
        picked = torch.topk(scores, k).indices.tolist() if k else []
    elif how == "random":
        picked = torch.randperm(n, generator=generator)[:k].tolist()
    else:
        raise InputError(f"unknown head choice {how!r}: use 'gradient' or 'random'")
    return sorted(int(h) for h in picked)


def head_rows(heads: list[int], head_dim: int) -> torch.Tensor:
    """Output-row indices of the given heads in a q/k/v projection."""
    if not heads:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])


def _n_heads(attn: nn.Module) -> int:
    n = getattr(attn, "num_heads", None) or getattr(getattr(attn, "config", None), "num_attention_heads", None)
    if not n:
        raise InputError(f"cannot tell how many heads {type(attn).__name__} has")
    return int(n)


# ---------------------------------------------------------------------------------------------- update


def update(clip_model: Any, session_data: SessionData, sparsity: float = DEFAULTS["sparsity"],
           top_heads: int = DEFAULTS["top_heads"], rank: int = DEFAULTS["rank"], alpha: float = DEFAULTS["alpha"],
           epochs: int = DEFAULTS["epochs"], lr: float = DEFAULTS["lr"], *, batch_size: int = 32,
           heads: str = "gradient", mask_fc1: bool = True, lora_init: str = "official", loss: str = "classes",
           weight_decay: float = 0.0, seed: int = 0, keep_masks: bool = True, progress: bool = False) -> SessionReport:
    """Run one LoRSU session on `clip_model` (a `CLIPModel` or `LoadedModel`), changing its vision
    encoder in place (LoRA merged); returns a `SessionReport`. A model whose family is no dual encoder
    with a wrappable ViT is refused (`CapabilityError`).

    sparsity:   fraction of each block's fc1 weights that may change (by |mean gradient|).
    top_heads:  attention heads per block given a masked LoRA on q/k/v.
    rank, alpha: LoRA rank and scale (update = alpha/rank · U·D) for q/k/v and the image projection.
    epochs, lr, batch_size: Adam training on the session's data.
    heads:      "gradient" (LoRSU) or "random" (the ablation: same number of heads, drawn at random).
    mask_fc1:   False trains every fc1 weight (the "unmasked fc1" ablation).
    lora_init:  "official" (default): the attention LoRA is one update of the stacked q/k/v weight with A
                (3·width × rank, Kaiming-uniform) on the output side and one zero-initialised B shared by q, k
                and v, the projection LoRA's random factor drawn with fan-in = rank, and fc1's bias trained
                densely, as the official code does. "egokit-v1": the earlier egokit variant, kept as the
                "lora_v1" ablation: three independent LoRAs with the random factor on the input side
                (Kaiming over the input width: a ~√(width/rank)× smaller initial scale) and fc1's bias frozen.
    loss:       "classes" (egokit's, default) or "pairs" (the official code's pairwise CLIP loss), for the
                mean gradient and the training alike (`training.contrastive_loss`).
    weight_decay: 0 (default): Adam; > 0: AdamW with that decay (the official trainer uses 0.01).
    seed:       seeds LoRA initialisation, batch order and random heads.
    """
    if lora_init not in LORA_INITS:
        raise InputError(f"unknown lora_init {lora_init!r}: use one of {', '.join(LORA_INITS)}")
    loaded = dual_encoder(clip_model)
    clip, adapter = loaded.model, loaded.adapter
    start = time.perf_counter()
    blocks = vision_blocks(loaded)
    names = block_names(loaded, ("q", "k", "v", "fc1"))  # per block: piece -> its name under the model
    gen = torch.Generator().manual_seed(int(seed))
    weights: dict[str, nn.Parameter] = {}
    for i, b in enumerate(blocks):
        weights[f"{i}.fc1"] = adapter.block_module(b, "fc1").weight
        for piece in QKV:
            weights[f"{i}.{piece}"] = adapter.block_module(b, piece).weight
    grads = mean_gradients(clip, session_data, weights, batch_size=max(batch_size, 64), loss=loss)

    patches: list[Patch] = []
    trainable: list[nn.Parameter] = []
    chosen_heads: list[list[int]] = []
    all_scores: list[list[float]] = []
    fc1_chosen: list[int] = []
    masks: list[torch.Tensor] = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            for i, b in enumerate(blocks):
                n_heads = _n_heads(adapter.block_module(b, "attention"))
                scores = head_scores(grads[f"{i}.q"], grads[f"{i}.k"], grads[f"{i}.v"], n_heads)
                picked = choose_heads(scores, top_heads, heads, gen)
                chosen_heads.append(picked)
                all_scores.append([float(s) for s in scores])
                if picked:
                    projections = [adapter.block_module(b, piece) for piece in QKV]
                    rows = head_rows(picked, projections[0].out_features // n_heads)
                    trainable += _attention_lora(clip, projections, [names[i][p] for p in QKV], rows, rank, alpha,
                                                 lora_init, patches)
                    trainable += [p.bias for p in projections if p.bias is not None]
                fc1 = adapter.block_module(b, "fc1")
                if mask_fc1:
                    mask = top_fraction_mask(grads[f"{i}.fc1"], sparsity)
                    wrapper = SparseDeltaLinear(fc1, mask.reshape(-1).nonzero().squeeze(1))
                    patches.append(install(clip, names[i]["fc1"], wrapper))
                    trainable.append(wrapper.delta)
                else:
                    mask = torch.ones_like(fc1.weight, dtype=torch.bool)
                    trainable.append(fc1.weight)
                if fc1.bias is not None and lora_init == "official":  # dense, as the official code trains it
                    trainable.append(fc1.bias)
                fc1_chosen.append(int(mask.sum()))
                if keep_masks:
                    masks.append(mask.cpu())
            projection = image_projection_name(loaded)
            if projection is not None and rank > 0:
                wrapper = RowLoRALinear(clip.get_submodule(projection), rank, alpha, init=lora_init)
                patches.append(install(clip, projection, wrapper))
                trainable += [wrapper.down, wrapper.up]
        stats = train(clip, session_data, trainable, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                      progress=progress, loss=loss, weight_decay=weight_decay)
        merge_all(patches)
    finally:
        remove_all(patches)  # only reached with wrappers left when training failed: drop their updates
    method = "lorsu" if heads == "gradient" and mask_fc1 else ("random_heads" if mask_fc1 else "unmasked_fc1")
    if heads == "random" and not mask_fc1:
        method = "random_heads_unmasked_fc1"
    if lora_init != "official":
        method = "lora_v1" if method == "lorsu" else f"{method}_lora_v1"
    return SessionReport(
        method=method, trainable_params=stats.trainable_params, optimizer_bytes=stats.optimizer_bytes,
        seconds=time.perf_counter() - start, heads=chosen_heads, head_scores=all_scores, fc1_chosen=fc1_chosen,
        fc1_masks=torch.stack(masks) if keep_masks and masks else None, losses=stats.losses, session=session_data.name,
        settings={"sparsity": sparsity, "top_heads": top_heads, "rank": rank, "alpha": alpha, "epochs": epochs,
                  "lr": lr, "batch_size": batch_size, "heads": heads, "mask_fc1": mask_fc1, "lora_init": lora_init,
                  "loss": loss, "weight_decay": weight_decay, "seed": seed},
    )


def _attention_lora(root: nn.Module, projections: list[nn.Module], names: list[str], rows: torch.Tensor, rank: int,
                    alpha: float, lora_init: str, patches: list[Patch]) -> list[nn.Parameter]:
    """Install the masked LoRA on one block's q, k and v projections (rows `rows` only); return its factors.

    "official": one `StackedLoRA` (shared B) read by a `SharedLoRALinear` per projection; "egokit-v1": an
    independent `RowLoRALinear` per projection."""
    if lora_init == "official":
        q = projections[0]
        lora = StackedLoRA(q.in_features, q.out_features, rank, alpha, rows, parts=len(projections),
                           device=q.weight.device, dtype=q.weight.dtype)
        for part, (proj, name) in enumerate(zip(projections, names)):
            patches.append(install(root, name, SharedLoRALinear(proj, lora, part)))
        return [lora.a, lora.b]
    params: list[nn.Parameter] = []
    for proj, name in zip(projections, names):
        wrapper = RowLoRALinear(proj, rank, alpha, rows, init=lora_init)
        patches.append(install(root, name, wrapper))
        params += [wrapper.down, wrapper.up]
    return params


__all__ = ["DEFAULTS", "SessionData", "SessionReport", "choose_heads", "head_rows", "head_scores",
           "top_fraction_mask", "update"]
