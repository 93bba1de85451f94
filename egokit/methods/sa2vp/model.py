"""SA²VP: a spatially aligned-and-adapted visual prompt on a frozen ViT (Pei et al., AAAI 2024).

    from egokit.methods.sa2vp import SA2VP, official_layers, tower_of
    model = SA2VP(tower_of(egokit.load("micro-clip")), num_classes=9)
    out = model(pixel_values)            # out.logits: base pathway (what predictions use)
    loss = model.loss(pixel_values, y)   # 0.8·CE(base) + 0.2·CE(prompt)

How it works (method notes §5):

1. A *prompt map*: one low-rank token (rank `d_prompt`) per patch, plus one for CLS, projected to the
   model width, plus the same frozen position embeddings the image tokens get (and, for CLIP, the same
   pre-norm). It is a second image-shaped input, aligned cell by cell with the patch grid.
2. Two pathways, base (image tokens) and prompt, go through the same frozen blocks.
3. At every block i, a cross-attention between the pathways' block inputs: each grid token attends only
   to the `window × window` neighbourhood at its own grid position in the other pathway; CLS attends
   globally. Its norm and q/k/v/out projections are the frozen block's own; dropout (0.1) follows it while
   training. Then a trainable LayerNorm (eps 1e-6) and adapter (width → d_prompt → width, dropout 0.1
   after the GELU and after the up-projection) give the *fusion* term, added with weight α to the block
   output of the receiving pathway: base → prompt at `distill_layers` (the prompt map is adapted to the
   image), prompt → base at the others (the adapted prompt edits the image features).
4. New prompt maps enter the prompt pathway at `deep_prompt_layers` (each passed through the frozen block
   and added with a learned per-channel scale), as the official code always does at blocks 4 and 8 of 12.
5. One shared linear head on both pathways' pooled outputs; loss 0.8·CE(base) + 0.2·CE(prompt);
   predictions use the base pathway only.

The defaults are the official code's: α = 0.1, d' = 16, dropout 0.1, LayerNorm eps 1e-6, base → prompt at
blocks (0, 4, 8) and deep prompt maps at (4, 8) of a 12-block ViT-B. For a tower of another depth the
official block indices are mapped proportionally, i → round(i·depth/12) (`official_layers`): on the 4-block
micro CLIP, base → prompt at (0, 1, 3) and deep prompt maps at (1, 3). The backbone's parameters are frozen
(`requires_grad=False`) and it is kept in eval mode; only the prompt maps, norms, adapters and head train.

Ablations (`interaction=`): "local" (the method), "global" (every token attends to every token of the
other pathway), "none" (two pathways that never meet); `directions="prompt_to_base"` replaces the
base → prompt layers with prompt → base ones, so the prompt map never sees the image.

Caching: the base pathway is a frozen function of the image until the first prompt → base block adds a
fusion term, so `frozen_states(pixels)` computes its block inputs up to there (and that block's output)
once; `forward(states=...)` starts from them and gives the same result as from the pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from egokit.errors import InputError
from egokit.methods.sa2vp.attention import global_attention, local_attention
from egokit.methods.sa2vp.result import PromptChangeMaps
from egokit.models.adapters.base import WRAPPABLE_VIT
from egokit.models.loading import LoadedModel
from egokit.models.vit_parts import AttentionParts, ViTParts, frozen, vit_parts

INTERACTIONS = ("local", "global", "none")
DIRECTIONS = ("both", "prompt_to_base")
#: Depth of the official code's backbone (ViT-B/16); its block indices below refer to it.
OFFICIAL_DEPTH = 12
#: The official code's base → prompt blocks of a 12-block ViT-B.
OFFICIAL_DISTILL_LAYERS = (0, 4, 8)
#: The blocks where the official code adds a new prompt map (always, two maps).
OFFICIAL_DEEP_PROMPT_LAYERS = (4, 8)
#: The official code's dropout on the cross-attention output and inside the adapter (ViT-B's dropout_rate).
OFFICIAL_DROPOUT = 0.1
#: The official code's fusion weight α (`add_scale`).
OFFICIAL_ALPHA = 0.1
#: The eps of the official adapter's LayerNorm.
OFFICIAL_NORM_EPS = 1e-6


def official_layers(layers: Sequence[int], depth: int, official_depth: int = OFFICIAL_DEPTH) -> tuple[int, ...]:
    """The official code's block indices (for a `official_depth`-block ViT) mapped proportionally onto a
    tower of `depth` blocks: i → round(i·depth/official_depth), duplicates and indices ≥ depth dropped.
    (0, 4, 8) → (0, 1, 3) and (4, 8) → (1, 3) for 4 blocks; unchanged for 12."""
    return tuple(sorted({int(round(int(i) * depth / official_depth)) for i in layers} & set(range(depth))))


def tower_of(model: LoadedModel | nn.Module) -> nn.Module:
    """The frozen ViT the prompt methods run on: for a `LoadedModel`, the vision tower its family names
    (the family must have the `WRAPPABLE_VIT` capability); a bare module (CLIPVisionModel, ViTModel,
    SiglipVisionModel, ...) is returned as it is (`vit_parts` finds the tower inside it)."""
    if isinstance(model, LoadedModel):
        model.adapter.require(WRAPPABLE_VIT, "SA²VP")
        return model.adapter.module("vision")
    if not isinstance(model, nn.Module):
        raise InputError(f"expected a LoadedModel (egokit.load(...)) or a torch module, got {type(model).__name__}")
    return model


@dataclass
class SA2VPOutput:
    """logits: base pathway (B, classes); prompt_logits: prompt pathway; change: (B, depth, rows*cols)
    norm of the fusion term added to each base grid token at each block (α included; zero at
    base → prompt blocks), or None unless asked for."""

    logits: torch.Tensor
    prompt_logits: torch.Tensor
    change: torch.Tensor | None = None


class Adapter(nn.Module):
    """Trainable LayerNorm (eps `norm_eps`), then width → rank → width with GELU, and dropout after the GELU
    and after the up-projection while training (the fusion adapter of one block, as the official code's)."""

    def __init__(self, width: int, rank: int, dropout: float = OFFICIAL_DROPOUT,
                 norm_eps: float = OFFICIAL_NORM_EPS) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=norm_eps)
        self.down = nn.Linear(width, rank)
        self.up = nn.Linear(rank, width)
        self.drop = nn.Dropout(dropout)
        for lin in (self.down, self.up):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.normal_(lin.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.up(self.drop(F.gelu(self.down(self.norm(x))))))


def cross_attend(att: AttentionParts, dst: torch.Tensor, src: torch.Tensor, interaction: str,
                 grid: tuple[int, int], window: int, prefix: int, prefix_only: bool = False) -> torch.Tensor:
    """The frozen block's attention with queries from `dst` and keys/values from `src` (both normed by
    the block's own pre-attention norm); local (window) or global. Returns (B, T, width), or only the
    prefix (CLS) rows (B, prefix, width) with `prefix_only` (they attend globally in both forms)."""
    b, t, width = src.shape
    h, d = att.heads, att.head_dim

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], h, d).transpose(1, 2)

    kn = att.norm(src)
    k, v = split(att.k(kn)), split(att.v(kn))
    if prefix_only:
        q = split(att.q(att.norm(dst[:, :prefix])))
        out = global_attention(q, k, v)
    else:
        q = split(att.q(att.norm(dst)))
        out = local_attention(q, k, v, grid, window, prefix) if interaction == "local" else global_attention(q, k, v)
    return att.out(out.transpose(1, 2).reshape(b, q.shape[2], h * d))


class SA2VP(nn.Module):
    """SA²VP on a frozen ViT-style vision model (see the module docstring).

    tower:              a ViT-style vision tower: CLIPVisionModel, ViTModel, SiglipVisionModel, ..., or the
                        tower of a loaded model (`tower_of(loaded)`); its parameters are frozen in place.
                        The model is built in eval mode; `.train()` turns its dropout on.
    num_classes:        classes of the shared head.
    d_prompt:           rank d' of prompt maps and adapters.
    alpha:              weight of the fusion term (official: 0.1).
    distill_layers:     blocks where the fusion goes base → prompt (others: prompt → base); indices
                        ≥ depth are dropped. None: the official (0, 4, 8) mapped onto the depth
                        (`official_layers`; when that covers every block, the last one stays prompt → base).
    window:             side of the aligned neighbourhood (odd).
    deep_prompt_layers: blocks (> 0) where a new prompt map is added to the prompt pathway. None: the
                        official (4, 8) mapped onto the depth; () for none.
    interaction:        "local" (the method), "global" or "none" (ablations).
    directions:         "both" (the method) or "prompt_to_base" (ablation: no base → prompt layer).
    aux_weight:         weight of the prompt pathway's loss (0.2; 0 for the no-auxiliary-loss ablation).
    dropout:            dropout on the cross-attention output and inside the adapters while training (0.1).
    norm_eps:           eps of the adapters' LayerNorm (official: 1e-6).
    """

    def __init__(self, tower: nn.Module, num_classes: int, d_prompt: int = 16, alpha: float = OFFICIAL_ALPHA,
                 distill_layers: Sequence[int] | None = None, window: int = 3,
                 deep_prompt_layers: Sequence[int] | None = None, interaction: str = "local",
                 directions: str = "both", aux_weight: float = 0.2, dropout: float = OFFICIAL_DROPOUT,
                 norm_eps: float = OFFICIAL_NORM_EPS) -> None:
        super().__init__()
        if interaction not in INTERACTIONS:
            raise InputError(f"interaction must be one of {', '.join(INTERACTIONS)}, got {interaction!r}")
        if directions not in DIRECTIONS:
            raise InputError(f"directions must be one of {', '.join(DIRECTIONS)}, got {directions!r}")
        if num_classes < 2 or d_prompt < 1:
            raise InputError(f"need num_classes >= 2 and d_prompt >= 1, got {num_classes} and {d_prompt}")
        if not 0.0 <= aux_weight < 1.0:
            raise InputError(f"aux_weight must be in [0, 1), got {aux_weight}")
        if not 0.0 <= dropout < 1.0 or norm_eps <= 0:
            raise InputError(f"need dropout in [0, 1) and norm_eps > 0, got {dropout} and {norm_eps}")
        self.parts: ViTParts = vit_parts(tower)
        self.backbone = frozen(self.parts.tower)
        depth, width, tokens = self.parts.depth, self.parts.width, self.parts.tokens
        self.num_classes, self.d_prompt, self.alpha, self.window = int(num_classes), int(d_prompt), float(alpha), window
        self.interaction, self.directions, self.aux_weight = interaction, directions, float(aux_weight)
        self.dropout, self.norm_eps = float(dropout), float(norm_eps)
        if distill_layers is None:
            distill_layers = official_layers(OFFICIAL_DISTILL_LAYERS, depth)
            if len(distill_layers) == depth > 1:  # keep a prompt → base block on very shallow towers
                distill_layers = distill_layers[:-1]
        distill = sorted({int(i) for i in distill_layers if 0 <= int(i) < depth})
        self.distill_layers: tuple[int, ...] = tuple(distill) if directions == "both" else ()
        if deep_prompt_layers is None:
            deep_prompt_layers = [i for i in official_layers(OFFICIAL_DEEP_PROMPT_LAYERS, depth) if i > 0]
        deep = sorted({int(i) for i in deep_prompt_layers})
        if any(not 0 < i < depth for i in deep):
            raise InputError(f"deep_prompt_layers must be between 1 and {depth - 1}, got {tuple(deep_prompt_layers)}")
        self.deep_prompt_layers: tuple[int, ...] = tuple(deep)

        self.prompt = nn.Parameter(torch.empty(tokens, d_prompt))
        nn.init.trunc_normal_(self.prompt, std=0.02)
        self.prompt_proj = _projection(d_prompt, width)
        self.deep_prompts = nn.ParameterList([nn.Parameter(nn.init.trunc_normal_(torch.empty(tokens, d_prompt),
                                                                                 std=0.02)) for _ in deep])
        self.deep_proj = nn.ModuleList([_projection(d_prompt, width) for _ in deep])
        self.deep_scale = nn.ParameterList([nn.Parameter(torch.randn(width) * 0.02) for _ in deep])
        self.adapters = nn.ModuleList([Adapter(width, d_prompt, dropout, norm_eps) for _ in range(depth)]) \
            if interaction != "none" else nn.ModuleList()
        self.attn_drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)
        self.to(device=self.parts.device, dtype=self.parts.dtype)
        self.eval()  # built for inference (dropout off); training turns it on with `.train()`

    # -- bookkeeping ---------------------------------------------------------------------------------
    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> SA2VP:
        super().train(mode)
        self.backbone.eval()  # the frozen model never trains (no dropout)
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changed (the frozen backbone is not included)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def direction(self, i: int) -> str:
        """"base_to_prompt" or "prompt_to_base" at block i ("none" without interaction)."""
        if self.interaction == "none":
            return "none"
        return "base_to_prompt" if i in self.distill_layers else "prompt_to_base"

    @property
    def frozen_blocks(self) -> int:
        """How many blocks the base pathway goes through before a fusion term changes it: the first
        prompt → base block is included (its output is frozen; the fusion is added after it)."""
        first = next((i for i in range(self.parts.depth) if self.direction(i) == "prompt_to_base"), self.parts.depth)
        return min(first + 1, self.parts.depth)

    # -- forward -------------------------------------------------------------------------------------
    def prompt_map(self, batch: int = 1) -> torch.Tensor:
        """The prompt pathway's input: (batch, tokens, width)."""
        p = self.prompt_proj(self.prompt)[None] + self.parts.position_embeddings()
        return self.parts.prepare(p).expand(batch, -1, -1)

    @torch.no_grad()
    def frozen_states(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The base pathway's states that do not depend on anything trained, (B, frozen_blocks + 1, tokens,
        width): the input of every block up to the first prompt → base block, and that block's output.
        `forward(states=...)` starts from them (they can be computed once per image)."""
        x = self.parts.embed(pixel_values)
        states = [x]
        for i in range(self.frozen_blocks):
            x = self.parts.run_block(i, x)
            states.append(x)
        return torch.stack(states, dim=1)

    def forward(self, pixel_values: torch.Tensor | None = None, return_change: bool = False,
                states: torch.Tensor | None = None) -> SA2VPOutput:
        """Both pathways through the frozen blocks with the aligned interaction at every block.

        From the pixels, or from `frozen_states(pixels)` (the same result, without recomputing the frozen
        part of the base pathway). While the prompt pathway does not depend on the image (before the
        first base → prompt block, or throughout without one) it is computed once and broadcast over the
        batch. When the model pools CLS, the last block is computed for CLS only (unless `return_change`
        asks for every token)."""
        parts = self.parts
        if states is None:
            if pixel_values is None:
                raise InputError("pass pixel_values or states")
            x = parts.embed(pixel_values)
        else:
            if states.dim() != 4 or states.shape[1] != self.frozen_blocks + 1:
                raise InputError(f"states must be frozen_states(pixels) of this model: (B, {self.frozen_blocks + 1}, "
                                 f"tokens, width), got {tuple(states.shape)}")
            x = states[:, 0]
        b, pre = x.shape[0], parts.prefix
        p = self.prompt_map(1)
        changes: list[torch.Tensor] = []
        for i in range(parts.depth):
            direction = self.direction(i)
            cls_only = i == parts.depth - 1 and parts.pools_prefix_only and not return_change
            cached = states is not None and i + 1 < states.shape[1]
            fusion = None
            if direction != "none":
                pe = p.expand(b, -1, -1)
                dst, src = (pe, x) if direction == "base_to_prompt" else (x, pe)
                attended = cross_attend(parts.attention(i), dst, src, self.interaction, parts.grid, self.window,
                                        pre, prefix_only=cls_only)
                fusion = self.alpha * self.adapters[i](self.attn_drop(attended) + (dst[:, :pre] if cls_only else dst))
            run = parts.run_block_prefix if cls_only else parts.run_block
            if cached:
                x, p = states[:, i + 1, :pre] if cls_only else states[:, i + 1], run(i, p)
            else:
                both = run(i, torch.cat([x, p], dim=0))
                x, p = both[:b], both[b:]
            if i in self.deep_prompt_layers:
                j = self.deep_prompt_layers.index(i)
                p = p + run(i, self.deep_proj[j](self.deep_prompts[j])[None]) * self.deep_scale[j]
            if direction == "base_to_prompt":
                p = p + fusion
            elif direction == "prompt_to_base":
                x = x + fusion
            if return_change:
                grid_change = fusion[:, pre:].norm(dim=-1) if direction == "prompt_to_base" \
                    else x.new_zeros(b, x.shape[1] - pre)
                changes.append(grid_change.detach())
        logits = self.head(parts.pool(x))
        prompt_logits = self.head(parts.pool(p)).expand(b, -1)
        change = torch.stack(changes, dim=1) if return_change else None
        return SA2VPOutput(logits=logits, prompt_logits=prompt_logits, change=change)

    def loss(self, pixel_values: torch.Tensor | None, labels: torch.Tensor,
             states: torch.Tensor | None = None) -> torch.Tensor:
        """(1 − aux_weight)·CE(base) + aux_weight·CE(prompt); 0.8 / 0.2 by default. From the pixels or
        from `frozen_states(pixels)`."""
        out = self(pixel_values, states=states)
        base = F.cross_entropy(out.logits, labels)
        if self.aux_weight == 0.0:
            return base
        return (1.0 - self.aux_weight) * base + self.aux_weight * F.cross_entropy(out.prompt_logits, labels)

    @torch.no_grad()
    def predict_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Base-pathway logits (what predictions use)."""
        return self(pixel_values).logits


def _projection(rank: int, width: int) -> nn.Linear:
    lin = nn.Linear(rank, width)
    nn.init.xavier_uniform_(lin.weight)
    nn.init.normal_(lin.bias, std=1e-6)
    return lin


def sa2vp_param_count(width: int, depth: int, tokens: int, d_prompt: int, num_classes: int,
                      interaction: str = "local", deep_prompts: int = 0) -> int:
    """Trainable parameters of `SA2VP` by formula:

        prompt map  tokens·d' + (d'·width + width)
        per block   2·width (LayerNorm) + (width·d' + d') + (d'·width + width)   (none without interaction)
        deep map    tokens·d' + (d'·width + width) + width (scale), per deep prompt layer
        head        width·classes + classes
    """
    proj = d_prompt * width + width
    prompt_map = tokens * d_prompt + proj
    block = 2 * width + (width * d_prompt + d_prompt) + proj
    deep = tokens * d_prompt + proj + width
    head = width * num_classes + num_classes
    return prompt_map + (depth * block if interaction != "none" else 0) + deep_prompts * deep + head


@torch.no_grad()
def prompt_change_maps(model: SA2VP, pixel_values: torch.Tensor, images: Any, labels: Sequence[int] | None = None,
                       classes: Sequence[str] | None = None, task: str = "") -> PromptChangeMaps:
    """Per image, how much the prompt pathway changes each patch's features (norm of the fusion term
    added to each base grid token, per block), with the model's predictions."""
    model.eval()
    out = model(pixel_values.to(model.parts.device), return_change=True)
    rows, cols = model.parts.grid
    change = out.change.float().cpu().reshape(len(pixel_values), model.parts.depth, rows, cols)
    preds = out.logits.argmax(-1).cpu().tolist()
    classes = list(classes) if classes is not None else [str(i) for i in range(model.num_classes)]
    labels = list(labels) if labels is not None else preds
    return PromptChangeMaps(images=np.asarray(images, dtype=np.uint8), change=change, labels=[int(v) for v in labels],
                            predictions=[int(v) for v in preds], classes=classes, task=task)

