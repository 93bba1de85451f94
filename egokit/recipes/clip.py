"""Recipe of the micro CLIP: a `CLIPModel` trained contrastively on ShapesWorld, without the held-out set.

Model: ViT 4 layers × width 128, patch 8 on 64×64 images (a class token + an 8×8 grid), text encoder
4 layers × 128 over a word-level tokenizer of ShapesWorld's vocabulary (`WORDS`), embedding width 128.

Data (train split of `ShapesWorld(seed=WORLD_SEED, holdout="default")`, generated on the fly): 70 %
ordinary scenes (1–3 objects), 30 % personal-concept scenes (query scenes of every kind and reference
views, from the whole train partition of concept identities), so marks and two-tone objects are seen.
Texts: full captions or short one-object descriptions (`clip_texts`), with multi-positive targets.

Losses: the symmetric contrastive loss with soft targets over every true (image, text) pair; an
attribute-prompt loss (each image against the zero-shot prompts of every colour, shape and pattern, all
values its objects show being targets; held-out values are candidates, never targets, and appear in no
other text); and a
dense auxiliary loss: linear heads read each patch token of vision layers `DENSE_LAYERS` and predict
the shape, colour, pattern and mark under that patch (`patch_targets`). It keeps patch tokens local
and teaches the encoder colours and marks fast. The heads are training-only and not saved.

Stage two (off by default, `foil_steps`): the text tower alone tuned with foils of each caption as extra
negatives (`clip_foils`). Measured on zoo v1's CLIP (`stages/micro-clip-v1`), it moved the validation localisation accuracy of
the misalignment method only from 0.49 to 0.50–0.52, so the v1 recipe does not use it (zoo v2's CLIP learns relations from hard negatives of every kind instead, recipe v2). Tuning the
vision layers the micro VLM does not read as well (`foil_vision_from=2`, 300 steps, lr 3e-4) gave 0.505 on
validation and 0.495 on test (relation foils still 0.0), so that is off too.

Recipe v2 (`ClipRecipe.v2`): hard negatives for both towers and dense size and place targets (fields below).
A later stage starts from a trained micro CLIP (`init`), optionally keeping the tokens the micro VLM reads
(`vision_from=2`) and with per-attribute loss weights (`prompt_weights`, `dense_target_weights`); the stages
and why stage 1b starts from v1 are in `stages/README.md`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import egokit.training as runtime
from egokit.data.concept_pool import split_concepts
from egokit.data.holdout import DEFAULT_HOLDOUT
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import COLORS, PATTERNS, SHAPES, WORDS
from egokit.errors import InputError
from egokit.models.loading import resolve_device
from egokit.recipes.clip_foils import text_embeddings
from egokit.recipes.clip_texts import match_matrix, sample_text, zero_shot_prompts
from egokit.recipes.contrastive import soft_contrastive
from egokit.recipes.patch_targets import ALL_TARGETS, TARGET_CLASSES, batch_targets, object_targets

#: Seed of the ShapesWorld generator every zoo model is trained and evaluated on (fixes the splits).
WORLD_SEED = 0
IMAGE_SIZE, PATCH = 64, 8
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONCEPT_SOURCES = ("positive", "hard_negative", "easy_negative", "distractor_only", "reference",
                   "reference_clutter")


#: how a run computes its forward pass (`ClipRecipe.precision`)
PRECISIONS = ("fp32", "bf16")
#: settings of stage two only: a stage-one state saved under other values still resumes
FOIL_KEYS = ("foil_steps", "foil_lr", "foil_weight", "foil_count", "foil_vision_from")


@dataclass
class ClipRecipe:
    """Every setting of a micro-CLIP run (saved with the checkpoint)."""

    seed: int = 0
    steps: int = 1600
    batch: int = 96
    lr: float = 1e-3
    warmup: int = 150
    weight_decay: float = 0.05
    width: int = 128
    layers: int = 4
    heads: int = 4
    text_max: int = 64
    dense_layers: tuple[int, ...] = (2, 4)
    #: what the dense heads predict per patch (`patch_targets`): the first recipe's four, or also size and
    #: the object's place (`ClipRecipe.v2`)
    dense_targets: tuple[str, ...] = tuple(TARGET_CLASSES)
    dense_weight: float = 1.0
    #: per dense target, its weight in the dense losses' mean over targets (default 1)
    dense_target_weights: dict[str, float] = field(default_factory=dict)
    prompt_weight: float = 1.0
    concept_share: float = 0.3
    world_seed: int = WORLD_SEED
    holdout: dict[str, Any] = field(default_factory=DEFAULT_HOLDOUT.to_dict)
    #: stage two (`clip_foils`): steps on the text tower with foils as extra negatives (0: none)
    foil_steps: int = 0
    foil_lr: float = 3e-4
    foil_weight: float = 1.0
    foil_count: int = 2
    #: stage two also tunes the vision encoder's layers from this index on (-1: vision frozen). The micro VLM
    #: reads `vision_feature_layer` 2 (the output of layer 1), so layers ≥ 2 change nothing it sees.
    foil_vision_from: int = -1
    #: stage one with hard negatives (NegCLIP-style, both towers, from the first step): each image's caption
    #: against every batch caption and the batch's hard negatives (`ShapesWorld.hard_negatives`: foils of
    #: each kind and the swapped object order), weighted by `negative_weight` (0: none, the first recipe).
    #: Per image at most `negatives_per_image`: the relation foil and the order swap whenever the caption
    #: has them (what the first recipe's model gets wrong: pair accuracy 0.55 and 0.50), then other kinds
    #: at random; every kind appears in every batch.
    negative_weight: float = 0.0
    negatives_per_image: int = 3
    #: the hard-negative kinds every image gets first, whenever its caption has them (`pick_negatives`)
    first_negatives: tuple[str, ...] = ("relation", "order")
    #: per attribute, the weight of its part of the attribute-prompt loss (the loss is their weighted mean)
    prompt_weights: dict[str, float] = field(default_factory=lambda: {"color": 1.0, "shape": 1.0, "pattern": 1.0})
    #: "bf16": forward and loss under `torch.autocast` in bfloat16 (weights and optimizer stay float32)
    precision: str = "fp32"
    #: a micro-CLIP checkpoint folder whose weights start the run (a later stage of a staged recipe: same
    #: architecture; the training-only dense heads and the optimizer start fresh). None: random weights.
    init: str | None = None
    #: vision layers below this index, the patch and position embeddings and the pre-LayerNorm stay as
    #: initialised (0: all train). With `init` and 2, a later stage keeps every token the micro VLM reads
    #: (`vision_feature_layer` 2: the output of layer 1) exactly as the stage it starts from made them.
    vision_from: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> ClipRecipe:
        """A seconds-long run of a tiny model (for tests of the recipe itself)."""
        return cls(seed=seed, steps=3, batch=8, width=32, layers=2, heads=2, dense_layers=(1, 2), warmup=1)

    @classmethod
    def v2(cls, seed: int = 0) -> ClipRecipe:
        """The second recipe (`--recipe v2`): hard negatives of every foil kind from the first step and dense
        targets of size and place, so that relations and size reach the image embedding."""
        return cls(seed=seed, negative_weight=1.0, dense_targets=tuple(ALL_TARGETS))


# ---------------------------------------------------------------------------------------------- model


def clip_tokenizer(text_max: int = 64) -> Any:
    """The word-level tokenizer of the micro CLIP (bos + words + eos, right padding)."""
    from egokit.models.text import word_tokenizer

    return word_tokenizer(WORDS, add_eos=True, padding_side="right", model_max_length=text_max)


def image_processor() -> Any:
    """CLIP's image processor at 64×64 (resize shortest side, centre crop, CLIP normalisation)."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE},
                                 crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                                 image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


def build_clip(recipe: ClipRecipe) -> tuple[Any, Any]:
    """A freshly initialised `CLIPModel` (fp32) and its `CLIPProcessor`."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    tok = clip_tokenizer(recipe.text_max)
    w = recipe.width
    config = CLIPConfig(
        text_config={"vocab_size": len(tok), "hidden_size": w, "intermediate_size": 4 * w,
                     "num_hidden_layers": recipe.layers, "num_attention_heads": recipe.heads,
                     "max_position_embeddings": recipe.text_max, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
        vision_config={"image_size": IMAGE_SIZE, "patch_size": PATCH, "hidden_size": w,
                       "intermediate_size": 4 * w, "num_hidden_layers": recipe.layers,
                       "num_attention_heads": recipe.heads},
        projection_dim=w,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = CLIPModel._from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    with torch.no_grad():
        pos = model.vision_model.embeddings.position_embedding.weight
        pos[1:] = sincos_2d(IMAGE_SIZE // PATCH, w) * 0.5
        pos[0] = 0.0
    return model, CLIPProcessor(image_processor=image_processor(), tokenizer=tok)


def sincos_2d(side: int, width: int) -> torch.Tensor:
    """(side*side, width) fixed 2-D sine-cosine position codes (raster order), as in MAE.

    Used only to initialise the (learned) patch position embeddings: a ViT trained from scratch then
    knows where its patches are from the first step, and learns shapes much sooner."""
    quarter = width // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    out = []
    for coord in (xs.reshape(-1), ys.reshape(-1)):
        angle = coord[:, None] * omega[None]
        out += [angle.sin(), angle.cos()]
    return torch.cat(out, dim=1)


class DenseHeads(nn.Module):
    """Linear heads predicting each patch's shape/colour/pattern/mark from chosen vision layers."""

    def __init__(self, width: int, layers: tuple[int, ...], targets: tuple[str, ...] = tuple(TARGET_CLASSES),
                 weights: dict[str, float] | None = None) -> None:
        super().__init__()
        self.layers = tuple(layers)
        #: per target, its weight in the mean over targets (default 1)
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in targets}
        unknown = sorted(set(targets) - set(ALL_TARGETS))
        if unknown:
            raise InputError(f"unknown dense targets {unknown}: choose from {', '.join(ALL_TARGETS)}")
        self.targets = {name: ALL_TARGETS[name] for name in targets}
        self.heads = nn.ModuleDict({str(layer): nn.Linear(width, sum(self.targets.values()))
                                    for layer in self.layers})

    def loss(self, hidden_states: tuple[torch.Tensor, ...], targets: dict[str, torch.Tensor],
             first_patch: int = 1, background: float = 0.25) -> torch.Tensor:
        """Cross-entropy averaged over the labelled patches (an object, a mark) plus `background` times
        the average over the others, then over targets and layers; `first_patch` skips the class token.
        (Most patches are background: a plain mean would hardly train the object patches.)"""
        total = hidden_states[0].new_zeros(())
        for layer in self.layers:
            logits = self.heads[str(layer)](hidden_states[layer][:, first_patch:])
            start = 0
            for name, n in self.targets.items():
                target = targets[name].reshape(-1)
                ce = F.cross_entropy(logits[..., start:start + n].reshape(-1, n), target, reduction="none")
                on = target > 0
                if on.any():
                    total = total + self.weights[name] * ce[on].mean()
                if (~on).any():
                    total = total + self.weights[name] * background * ce[~on].mean()
                start += n
        return total / (len(self.layers) * sum(self.weights.values()))

    def object_loss(self, hidden_states: tuple[torch.Tensor, ...], objects: dict[str, torch.Tensor],
                    first_patch: int = 1) -> torch.Tensor:
        """Cross-entropy of each object's attributes read from its patch tokens, pooled with the
        object's share of every patch (same heads as `loss`): the tokens of an object must, together,
        say what it is — a much cleaner signal for shape than single edge patches."""
        total = hidden_states[0].new_zeros(())
        w = objects["weights"]
        for layer in self.layers:
            pooled = torch.einsum("bop,bpd->bod", w, hidden_states[layer][:, first_patch:])
            logits = self.heads[str(layer)](pooled)
            start = 0
            for name, n in self.targets.items():
                target = objects[name].reshape(-1)
                if (target >= 0).any():
                    total = total + self.weights[name] * F.cross_entropy(
                        logits[..., start:start + n].reshape(-1, n), target, ignore_index=-100)
                start += n
        return total / (len(self.layers) * sum(self.weights.values()))


def to_pixels(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 → CLIP-normalised (B, 3, H, W) float32, as the processor does for 64×64 input."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


# ---------------------------------------------------------------------------------------------- data


class ClipData:
    """Deterministic training batches: batch `step` depends only on (seed, step)."""

    def __init__(self, recipe: ClipRecipe) -> None:
        self.recipe = recipe
        self.world = ShapesWorld(seed=recipe.world_seed, split="train", holdout=recipe.holdout)
        self.concepts = split_concepts(self.world)
        #: attribute → the candidate values of the prompt loss. Held-out values are candidates too but
        #: never a target (no training image shows one): the model learns their words name nothing it
        #: has seen, instead of leaving an untrained prompt that wins whenever no trained one fits.
        self.prompt_values = {attr: list(values)
                              for attr, values in (("color", COLORS), ("shape", SHAPES), ("pattern", PATTERNS))}

    def prompt_targets(self, scenes: list) -> dict[str, np.ndarray]:
        """Per attribute, (n_images, n_values) bool: which values some object of the image shows."""
        out = {}
        for attr, values in self.prompt_values.items():
            t = np.zeros((len(scenes), len(values)), dtype=bool)
            for i, s in enumerate(scenes):
                for o in s.objects:
                    shown = o.colors if attr == "color" else (() if (attr == "pattern" and o.color2) else
                                                               (getattr(o, attr),))
                    for v in shown:
                        if v in values:
                            t[i, values.index(v)] = True
            out[attr] = t
        return out

    def scenes(self, step: int, batch: int) -> list:
        rng = np.random.default_rng([self.recipe.seed, 1, step])
        out = []
        for _ in range(batch):
            if rng.random() < self.recipe.concept_share:
                concept = self.concepts[int(rng.integers(len(self.concepts)))]
                source = CONCEPT_SOURCES[int(rng.integers(len(CONCEPT_SOURCES)))]
                index = int(rng.integers(1 << 30))
                if source.startswith("reference"):
                    view = self.world.reference_views(concept, 1, clutter=source.endswith("clutter"))[0]
                    out.append(view)
                else:
                    out.append(self.world.concept_query(concept, source, index))
            else:
                out.append(self.world.scene(int(rng.integers(1 << 30))))
        return out

    def batch(self, step: int, tokenizer: Any, device: torch.device) -> dict[str, Any]:
        rng = np.random.default_rng([self.recipe.seed, 2, step])
        scenes = self.scenes(step, self.recipe.batch)
        texts = [sample_text(s, i, rng) for i, s in enumerate(scenes)]
        enc = tokenizer([t.text for t in texts], padding=True, return_tensors="pt")
        targets = batch_targets(scenes)
        out = {
            "scenes": scenes,
            "pixel_values": to_pixels(np.stack([s.image for s in scenes]), device),
            "input_ids": enc["input_ids"].to(device),
            "attention_mask": enc["attention_mask"].to(device),
            "match": torch.from_numpy(match_matrix(scenes, texts)).to(device),
            "dense": {k: torch.from_numpy(v).to(device) for k, v in targets.items()},
            "objects": {k: torch.from_numpy(v).to(device) for k, v in object_targets(scenes).items()},
            "prompts": {attr: (tokenizer(zero_shot_prompts(attr, values), padding=True, return_tensors="pt").to(device),
                               torch.from_numpy(t).to(device))
                        for (attr, values), t in zip(self.prompt_values.items(), self.prompt_targets(scenes).values())},
        }
        if self.recipe.negative_weight > 0:
            out["negatives"] = self.negatives(step, scenes, tokenizer, device)
        return out

    def negatives(self, step: int, scenes: list, tokenizer: Any, device: torch.device) -> dict[str, Any]:
        """The hard-negative part of a batch: every scene's caption, then every scene's hard negatives
        (`ShapesWorld.hard_negatives`), tokenized together, and `target` (n_images, n_texts) bool: text j is
        true of image i (its own caption, another image's identical caption; a negative never is, unless it
        happens to spell image i's caption)."""
        rng = np.random.default_rng([self.recipe.seed, 5, step])
        captions = [s.caption for s in scenes]
        negatives = [text for s in scenes for text in pick_negatives(self.world.hard_negatives(s, rng),
                                                                      self.recipe.negatives_per_image, rng,
                                                                      self.recipe.first_negatives)]
        texts = captions + negatives
        target = np.array([[t == c for t in texts] for c in captions], dtype=bool)
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
                "target": torch.from_numpy(target).to(device), "count": len(negatives)}


#: the hard-negative kinds every image gets when its caption has them (`ClipRecipe.negatives_per_image`)
FIRST_NEGATIVES = ("relation", "order")


def pick_negatives(negatives: list[tuple[str, str]], limit: int, rng: np.random.Generator,
                   first_kinds: tuple[str, ...] = FIRST_NEGATIVES) -> list[str]:
    """At most `limit` of an image's (kind, caption) hard negatives: those of `first_kinds` first, then random others."""
    first = [text for kind, text in negatives if kind in first_kinds]
    others = [text for kind, text in negatives if kind not in first_kinds]
    order = rng.permutation(len(others)).tolist() if others else []
    return (first + [others[i] for i in order])[:limit]


# ---------------------------------------------------------------------------------------------- loss


def clip_losses(model: Any, heads: DenseHeads, batch: dict[str, Any],
                prompt_weights: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    vis = model.vision_model(pixel_values=batch["pixel_values"], output_hidden_states=True)
    img = F.normalize(model.visual_projection(vis.pooler_output), dim=-1)
    txt_out = model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    txt = F.normalize(model.text_projection(txt_out.pooler_output), dim=-1)
    logits = model.logit_scale.exp().clamp(max=100.0) * img @ txt.t()
    contrastive = soft_contrastive(logits, batch["match"])
    dense = heads.loss(vis.hidden_states, batch["dense"]) + heads.object_loss(vis.hidden_states, batch["objects"])
    prompt = logits.new_zeros(())
    weights = prompt_weights or {}
    for attr, (enc, target) in batch["prompts"].items():
        p = model.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
        p = F.normalize(model.text_projection(p), dim=-1)
        rows = target.any(1)
        if rows.any():
            lg = model.logit_scale.exp().clamp(max=100.0) * img[rows] @ p.t()
            t = target[rows].float()
            prompt = prompt + weights.get(attr, 1.0) * (-(F.log_softmax(lg, dim=1) * t / t.sum(1, keepdim=True)).sum(1).mean())
    total_weight = sum(weights.get(attr, 1.0) for attr in batch["prompts"])
    out = {"contrastive": contrastive, "dense": dense, "prompt": prompt / total_weight}
    if "negatives" in batch:
        neg = batch["negatives"]
        texts = text_embeddings(model, neg["input_ids"], neg["attention_mask"])
        lg = model.logit_scale.exp().clamp(max=100.0) * img @ texts.t()
        t = neg["target"].float()
        out["negatives"] = -(F.log_softmax(lg.float(), dim=1) * t / t.sum(1, keepdim=True)).sum(1).mean()
    return out


# ---------------------------------------------------------------------------------------------- training


def training_parts(recipe: ClipRecipe, dev: torch.device) -> tuple[Any, Any, DenseHeads, list, torch.optim.Optimizer]:
    """A fresh run's model (in train mode on `dev`), processor, dense heads, trained parameters and optimizer."""
    if recipe.precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {recipe.precision!r}")
    model, processor = build_clip(recipe)
    if recipe.init:
        load_init(model, recipe.init)
    freeze_vision_below(model, recipe.vision_from)
    if recipe.foil_steps:
        from egokit.recipes.clip_foils import stage_two_parameters

        stage_two_parameters(model, recipe.foil_vision_from)  # a bad stage-two setting fails before stage one
    model.to(dev).train()
    heads = DenseHeads(recipe.width, recipe.dense_layers, recipe.dense_targets, recipe.dense_target_weights).to(dev)
    params = [p for p in [*model.parameters(), *heads.parameters()] if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr, betas=(0.9, 0.98))
    return model, processor, heads, params, opt


def freeze_vision_below(model: Any, layer: int) -> None:
    """Freeze the vision embeddings, the pre-LayerNorm and the encoder layers before `layer` (0: nothing)."""
    vision = model.vision_model
    if not 0 <= layer <= len(vision.encoder.layers):
        raise InputError(f"vision_from must be 0–{len(vision.encoder.layers)}, got {layer}")
    if layer == 0:
        return
    for part in (vision.embeddings, vision.pre_layrnorm, *vision.encoder.layers[:layer]):
        part.requires_grad_(False)


def load_init(model: Any, folder: str) -> None:
    """Copy the weights of the micro CLIP in `folder` (any dtype) into `model`; a folder that is not a micro
    CLIP of the same shape fails with a message naming what differs."""
    from transformers import CLIPModel

    path = runtime.init_folder(folder, "clip", "micro CLIP")
    source = CLIPModel.from_pretrained(path, dtype=torch.float32)
    mine, theirs = model.state_dict(), source.state_dict()
    differs = sorted(k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape)
    if differs:
        raise InputError(f"--init {folder}: not a micro CLIP of this recipe's shape ({len(differs)} weights differ, "
                         f"e.g. {differs[0]})")
    model.load_state_dict(theirs, strict=False)


def train_step(model: Any, heads: DenseHeads, params: list, opt: torch.optim.Optimizer, batch: dict[str, Any],
               recipe: ClipRecipe, dev: torch.device) -> dict[str, torch.Tensor]:
    """One optimizer step of stage one on `batch` (the forward under the recipe's precision); returns the losses."""
    with runtime.autocast(dev, recipe.precision):
        losses = clip_losses(model, heads, batch, recipe.prompt_weights)
    loss = (losses["contrastive"] + recipe.dense_weight * losses["dense"]
            + recipe.prompt_weight * losses["prompt"] + recipe.negative_weight * losses.get("negatives", 0.0))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return losses


def train_clip(recipe: ClipRecipe, out: Path, run_dir: Path, device: str = "auto", resume: bool = True,
               checkpoint_seconds: float = 180.0, max_seconds: float | None = None) -> Path:
    """Train (or resume) a micro CLIP and export it in fp16 to `out`. Returns `out`.

    With `max_seconds`, a run that reaches that much wall time saves its state and raises
    `TimeLimitReached` (nothing is exported); the same call resumes it."""
    dev = resolve_device(device)
    runtime.set_threads(dev)
    runtime.seed_everything(recipe.seed)
    model, processor, heads, params, opt = training_parts(recipe, dev)
    start, elapsed = 0, 0.0
    state = runtime.load_state(run_dir, dev) if resume else None
    if state is not None and runtime.same_recipe(state.get("recipe"), _jsonable(recipe), also=FOIL_KEYS):
        model.load_state_dict(state["model"])
        heads.load_state_dict(state["heads"])
        opt.load_state_dict(state["opt"])
        start, elapsed = int(state["step"]), float(state["elapsed"])
        runtime.restore_rng_state(state["rng"])
        print(f"resuming micro-clip training at step {start}", flush=True)
    data = ClipData(recipe)
    tok = processor.tokenizer
    every = runtime.Every(checkpoint_seconds)
    log = runtime.LossLog(run_dir, fresh=start == 0)
    t0 = time.monotonic()
    bar = tqdm(range(start, recipe.steps), initial=start, total=recipe.steps, desc="micro-clip",
               mininterval=5.0, smoothing=0.05)
    for step in bar:
        lr = runtime.lr_at(step, recipe.steps, recipe.lr, recipe.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        losses = train_step(model, heads, params, opt, data.batch(step, tok, dev), recipe, dev)
        bar.set_postfix(**{k[:5]: f"{v.item():.3f}" for k, v in losses.items()}, lr=f"{lr:.1e}", refresh=False)
        log(step, {**losses, "lr": lr})
        out_of_time = max_seconds is not None and time.monotonic() - t0 >= max_seconds and step + 1 < recipe.steps
        if every() or out_of_time or step + 1 == recipe.steps:
            runtime.save_state(run_dir, {
                "recipe": _jsonable(recipe), "step": step + 1, "model": model.state_dict(),
                "heads": heads.state_dict(), "opt": opt.state_dict(), "rng": runtime.rng_state(),
                "elapsed": elapsed + time.monotonic() - t0})
        if out_of_time:
            bar.close()
            raise runtime.TimeLimitReached(step + 1, recipe.steps, run_dir)
    bar.close()
    if recipe.foil_steps:
        from egokit.recipes.clip_foils import tune_on_foils

        tune_on_foils(model, data, tok, recipe, dev)
    elapsed += time.monotonic() - t0
    model.eval()
    export_clip(model, processor, out, {
        "recipe": _jsonable(recipe), "kind": "clip", "steps": recipe.steps, "wall_seconds": round(elapsed, 1),
        "device": runtime.describe_device(dev)})
    runtime.copy_losses(run_dir, out)
    return out


def export_clip(model: Any, processor: Any, out: Path, training: dict[str, Any]) -> None:
    """Write the model (fp16 safetensors), processor and `training.json` to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    runtime.export_fp16(model, out)
    processor.save_pretrained(out)
    runtime.atomic_write_json(out / "training.json", training)


def _jsonable(recipe: Any) -> dict[str, Any]:
    d = asdict(recipe)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in copy.deepcopy(d).items()}
