"""Recipe of the point head: `python -m egokit.recipes.train pixel [--mode box|trace] [--base micro-vlm]`.

What is trained. A `PointHead` (MLP depth 4, hidden 512, GELU, with its visual read-out over the image
tokens) on the base VLM's final hidden states and, by default, copies of *every* decoder layer of the
language model (`tune_layers=-1`), so the localisation loss reaches the whole language model as in
PixelLLM (which tunes it with LoRA). The loss is PixelLLM's: caption cross-entropy + 0.1 × L1 between
the predicted and target corner points *in pixels* of the model's view of the image (the official
`point_loss` compares absolute coordinates), on the tokens that have a target. Everything else (vision
tower, projector, embeddings, the vocabulary projection) stays frozen. The shared VLM is not changed: the
tuned layers ship inside the head and are swapped in only while the head is used (`PointHead.attached`).

Data (train split of `ShapesWorld(seed=0)`, generated on the fly, deterministic given the seed and step):
- captions: `describe the image .` → the caption the micro VLM writes (objects left to right), every
  word with its target box: ShapesWorld's boxes (`--mode box`) or a simulated mouse trace aligned to words
  by relative position as in Localized Narratives (`--mode trace`); see `egokit.methods.pixel.targets`. The caption
  tokens (and eos) carry the cross-entropy.
- referring expressions (a share `refer_share` of examples), a task of their own as in PixelLLM's
  referring configs: `where is the red circle ?` with the expression teacher-forced as the answer and
  ended by the end-of-sequence token; no cross-entropy; only the expression's last token (the one before
  the end-of-sequence token, the official `point_output_ignore='^end-1'`) targets the object's box, as
  its two corners. With `answer_position` (not PixelLLM's rule), the prompt's last token, where the model
  starts its answer, targets the box too, for `refer(..., readout="answer_position")`.

A resumable state is saved in the run folder every few minutes (`--resume`, the default, continues it).
Only LLaVA-style processors (one `pixel_values` row per image) are batched here; the verbs
(`localize`, `refer`) work with every adapter.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from egokit.methods.pixel.head import (
    FEATURES,
    LAYER_INPUTS,
    PointHead,
    decoder_layers,
    feature_hooks,
    hidden_size,
    image_readout_inputs,
)
from egokit.methods.pixel.targets import MODES, Example, caption_example, normalise, refer_example

IGNORE = -100
TINY_BASE = "tiny:llava"
#: steps between two points of the loss curve written to training.json
LOG_EVERY = 50
#: the targeted tokens of a batch: caption words, referring expressions' last tokens, answer positions
TARGET_KINDS = ("caption", "refer_last_token", "answer_position")
#: the loss curve's columns after the step (the L1 columns in pixels of the model's view)
CURVE_COLUMNS = ("ce", "l1", *(f"l1_{k}" for k in TARGET_KINDS))


@dataclass
class PixelRecipe:
    """Every setting of a point-head run (saved with the head)."""

    seed: int = 0
    steps: int = 5000
    batch: int = 32
    lr: float = 1e-3            # the head
    layer_lr: float = 2e-4      # the tuned copies of the decoder layers
    warmup: int = 100
    weight_decay: float = 0.01
    hidden: int = 512
    depth: int = 4
    point_weight: float = 0.1   # on the L1 in pixels of the model's view (PixelLLM's scale)
    mode: str = "box"
    refer_share: float = 0.7    # referring expressions' share of the examples (one target token each)
    tune_layers: int = -1       # how many of the last decoder layers get a tuned copy (-1: all, 0: none)
    readout: bool = True        # the head also reads the image tokens (PointHead's visual read-out)
    answer_position: bool = True  # referring: the answer position is a target too (not PixelLLM's rule)
    base: str = "micro-vlm"
    world_seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> PixelRecipe:
        """Seconds: a tiny random LLaVA, a narrow head, three steps (for tests of the recipe itself)."""
        return cls(seed=seed, steps=3, batch=4, hidden=32, warmup=1, base=TINY_BASE)


# ---------------------------------------------------------------------------------------------- base model


def load_base(base: str, device: torch.device, seed: int = 0) -> Any:
    """The VLM the head is trained on: a zoo name or folder, or `tiny:llava` (random, for quick runs)."""
    if base == TINY_BASE:
        from egokit.models.loading import from_model
        from egokit.models.tiny import build_tiny

        model, processor = build_tiny("llava", seed=seed)
        loaded = from_model(model.to(device), processor)
        loaded.name = TINY_BASE
        return loaded
    from egokit.models.loading import load

    return load(base, device=str(device))


# ---------------------------------------------------------------------------------------------- batches


class Collator:
    """Token ids (right padded), cross-entropy labels, per-token target boxes (fractions of the model's view),
    the view's size in pixels (`scale`: width, height, width, height, for the L1 in pixels) and pixel values.
    Every answer ends with the end-of-sequence token; it carries the cross-entropy only in captions."""

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self.tok = getattr(loaded.processor, "tokenizer", loaded.processor)
        self._prompts: dict[str, tuple[list[int], torch.Tensor, torch.Tensor]] = {}
        self._image_size: tuple[int, int] | None = None

    def prompt_ids(self, prompt: str, image: np.ndarray) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Token ids of the chat prompt with its image placeholders expanded, the image tokens' positions and
        their cell centres (fractions of the view). Cached per prompt: with a fixed image size neither the
        expansion nor the layout depends on the pixels."""
        if prompt not in self._prompts:
            adapter = self.loaded.adapter
            inputs = adapter.prepare([image], adapter.prompt(prompt, 1))
            layout = adapter.visual_layout(inputs, 0)[0]
            _, centres = image_readout_inputs(layout, torch.zeros(inputs["input_ids"].shape[1], 1))
            self._prompts[prompt] = (inputs["input_ids"][0].tolist(), layout.positions.clone(), centres)
        return self._prompts[prompt]

    def answer(self, words: list[str]) -> tuple[list[int], list[int]]:
        """Token ids of the answer and the word each token belongs to (by character offsets)."""
        text = " ".join(words)
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        starts = np.cumsum([0] + [len(w) + 1 for w in words])[:-1]
        word_of = [int(np.searchsorted(starts, a, side="right") - 1) for a, _ in enc["offset_mapping"]]
        return list(enc["input_ids"]), word_of

    def __call__(self, examples: list[Example], images: np.ndarray) -> dict[str, torch.Tensor]:
        size = images.shape[1:3]
        rows, labels, targets, has_target, image_positions, centres, kinds = [], [], [], [], [], [], []
        for ex in examples:
            prompt, positions, cells = self.prompt_ids(ex.prompt, images[ex.image])
            image_positions.append(positions)
            centres.append(cells)
            ids, word_of = self.answer(ex.words)
            tail = [self.tok.eos_token_id]
            row = prompt + ids + tail
            lab = [IGNORE] * len(prompt) + ((ids + tail) if ex.caption_loss else [IGNORE] * (len(ids) + len(tail)))
            tgt = np.zeros((len(row), 4), dtype=np.float32)
            mask = np.zeros(len(row), dtype=bool)
            kind = np.zeros(len(row), dtype=np.int64)  # TARGET_KINDS index of each targeted token
            for j, w in enumerate(word_of):
                box = ex.boxes[w] if 0 <= w < len(ex.boxes) else None
                if box is not None:
                    tgt[len(prompt) + j] = normalise(box, size)
                    mask[len(prompt) + j] = True
            if ex.last_token_box is not None:  # the token the end-of-sequence token follows
                tgt[len(prompt) + len(ids) - 1] = normalise(ex.last_token_box, size)
                mask[len(prompt) + len(ids) - 1] = True
                kind[len(prompt) + len(ids) - 1] = 1
            if ex.answer_box is not None:      # the prompt's last token (not PixelLLM's rule)
                tgt[len(prompt) - 1] = normalise(ex.answer_box, size)
                mask[len(prompt) - 1] = True
                kind[len(prompt) - 1] = 2
            rows.append(row)
            labels.append(lab)
            targets.append(tgt)
            has_target.append(mask)
            kinds.append(kind)
        length = max(len(r) for r in rows)
        n = len(rows)
        out = {
            "input_ids": torch.full((n, length), int(self.tok.pad_token_id), dtype=torch.long),
            "attention_mask": torch.zeros((n, length), dtype=torch.long),
            "labels": torch.full((n, length), IGNORE, dtype=torch.long),
            "targets": torch.zeros((n, length, 4)),
            "has_target": torch.zeros((n, length), dtype=torch.bool),
            "target_kind": torch.zeros((n, length), dtype=torch.long),
        }
        for i, (r, lab, tgt, m, kd) in enumerate(zip(rows, labels, targets, has_target, kinds)):
            out["target_kind"][i, :len(r)] = torch.from_numpy(kd)
            out["input_ids"][i, :len(r)] = torch.tensor(r)
            out["attention_mask"][i, :len(r)] = 1
            out["labels"][i, :len(r)] = torch.tensor(lab)
            out["targets"][i, :len(r)] = torch.from_numpy(tgt)
            out["has_target"][i, :len(r)] = torch.from_numpy(m)
        out["image_positions"] = torch.stack(image_positions)
        out["centres"] = torch.stack(centres)
        processor = self.loaded.processor.image_processor
        out["pixel_values"] = processor(images=list(images), return_tensors="pt")["pixel_values"]
        h, w = out["pixel_values"].shape[-2:]
        out["scale"] = torch.tensor([w, h, w, h], dtype=torch.float32).expand(n, 4).clone()
        return out


def make_examples(world: Any, rng: np.random.Generator, recipe: PixelRecipe) -> tuple[list[Example], np.ndarray]:
    """One batch of examples (captions and referring expressions) and their images."""
    examples, images = [], []
    while len(examples) < recipe.batch:
        scene = world.scene(int(rng.integers(1 << 30)))
        ex = (refer_example(scene, len(images), rng, answer_position=recipe.answer_position)
              if rng.random() < recipe.refer_share else None)
        if ex is None:
            ex = caption_example(scene, len(images), recipe.mode, rng)
        images.append(scene.image)
        examples.append(ex)
    return examples, np.stack(images)


def batch_losses(loaded: Any, head: PointHead, batch: dict[str, torch.Tensor],
                 device: torch.device) -> dict[str, torch.Tensor]:
    """Caption cross-entropy (mean over answer tokens) and L1 of the points in pixels of the model's view
    (mean over targeted tokens and their four coordinates, as the official `point_loss`)."""
    model = loaded.model
    dtype = next(model.parameters()).dtype
    with feature_hooks(loaded) as hooks:
        out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                    pixel_values=batch["pixel_values"].to(device, dtype))
    labels = batch["labels"].to(device)[:, 1:]
    logits = out.logits[:, :-1].float()
    if (labels != IGNORE).any():
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)
    else:  # a batch of referring expressions only: no caption loss
        ce = logits.sum() * 0.0
    has = batch["has_target"].to(device)
    if not has.any():
        return {"ce": ce, "l1": ce.new_zeros(())}
    feats = hooks[FEATURES].float()
    if head.readout:
        pos = batch["image_positions"].to(device)
        states = hooks[LAYER_INPUTS].float()
        image_feats = states.gather(1, pos[..., None].expand(-1, -1, states.shape[-1]))
        pred = head(feats, image_feats, batch["centres"].to(device))[has].flatten(-2)   # (K, 4): x0, y0, x1, y1
    else:
        pred = head(feats[has]).flatten(-2)
    scale = batch["scale"].to(device)[:, None, :].expand(-1, has.shape[1], -1)[has]                # (K, 4) pixels
    per_token = ((pred - batch["targets"].to(device)[has]) * scale).abs().mean(-1)                # (K,)
    out = {"ce": ce, "l1": per_token.mean()}
    kind = batch["target_kind"].to(device)[has]
    for k, name in enumerate(TARGET_KINDS):  # for the loss curve only (detached)
        if (kind == k).any():
            out[f"l1_{name}"] = per_token[kind == k].detach().mean()
    return out


def step_loss(recipe: PixelRecipe, losses: dict[str, torch.Tensor], with_caption: bool = True) -> torch.Tensor:
    """PixelLLM's loss: caption cross-entropy + `point_weight` (0.1) × the L1 in pixels. Without tuned layers
    the cross-entropy has nothing to train and is left out."""
    loss = recipe.point_weight * losses["l1"]
    return loss + losses["ce"] if with_caption else loss


def tuned_layer_ids(recipe: PixelRecipe, n_layers: int) -> list[int]:
    """The decoder layers that get a tuned copy: the last `tune_layers` (-1: all of them)."""
    n = n_layers if recipe.tune_layers < 0 else min(recipe.tune_layers, n_layers)
    return list(range(n_layers - n, n_layers))


# ---------------------------------------------------------------------------------------------- training


def train_pixel(recipe: PixelRecipe, out: Path, run_dir: Path, device: str = "auto", resume: bool = True,
                checkpoint_seconds: float = 120.0) -> Path:
    """Train (or resume) the point head on `recipe.base` and save it to `out`. Returns `out`."""
    import egokit.training as runtime
    from egokit.data.shapesworld import ShapesWorld
    from egokit.models.loading import resolve_device

    if recipe.mode not in MODES:
        raise ValueError(f"unknown target mode {recipe.mode!r}; choose one of {', '.join(MODES)}")
    dev = resolve_device(device)
    runtime.set_threads(dev)
    runtime.seed_everything(recipe.seed)
    loaded = load_base(recipe.base, dev, recipe.seed)
    model = loaded.model.eval()
    fingerprint = loaded.fingerprint()                         # of the untouched base model
    model.requires_grad_(False)
    layers = decoder_layers(loaded)
    tuned_ids = tuned_layer_ids(recipe, len(layers))
    tuned_params = []
    for i in tuned_ids:
        layers[i].requires_grad_(True)
        tuned_params += list(layers[i].parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        head = PointHead(hidden_size(loaded), recipe.hidden, recipe.depth, readout=recipe.readout).to(dev)
    groups = [{"params": list(head.parameters()), "lr": recipe.lr, "peak": recipe.lr}]
    if tuned_params:
        groups.append({"params": tuned_params, "lr": recipe.layer_lr, "peak": recipe.layer_lr})
    opt = torch.optim.AdamW(groups, weight_decay=recipe.weight_decay, betas=(0.9, 0.98))

    start, elapsed = 0, 0.0
    history: list[list[float]] = []  # every LOG_EVERY steps: step, mean ce, mean L1 (pixels), L1 of each kind
    sums: dict[str, list[float]] = {}
    state = runtime.load_state(run_dir, dev) if resume else None
    if state is not None and runtime.same_recipe(state.get("recipe"), asdict(recipe)):
        head.load_state_dict(state["head"])
        for i in tuned_ids:
            layers[i].load_state_dict(state["layers"][str(i)])
        opt.load_state_dict(state["opt"])
        start, elapsed = int(state["step"]), float(state["elapsed"])
        history = list(state.get("history", []))
        runtime.restore_rng_state(state["rng"])
        print(f"resuming point-head training at step {start}", flush=True)

    world = ShapesWorld(seed=recipe.world_seed, split="train")
    collate = Collator(loaded)
    every = runtime.Every(checkpoint_seconds)
    t0 = time.monotonic()
    head.train()
    for i in tuned_ids:
        layers[i].train()
    bar = tqdm(range(start, recipe.steps), initial=start, total=recipe.steps, desc="micro-pixel",
               mininterval=5.0, smoothing=0.05)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = runtime.lr_at(step, recipe.steps, g["peak"], recipe.warmup)
        rng = np.random.default_rng([recipe.seed, 21, step])
        examples, images = make_examples(world, rng, recipe)
        batch = collate(examples, images)
        losses = batch_losses(loaded, head, batch, dev)
        loss = step_loss(recipe, losses, with_caption=bool(tuned_params))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step()
        bar.set_postfix(ce=f"{losses['ce'].item():.3f}", l1=f"{losses['l1'].item():.2f}px", refresh=False)
        for key, value in losses.items():
            total = sums.setdefault(key, [0.0, 0.0])
            total[0], total[1] = total[0] + float(value.detach()), total[1] + 1
        if (step + 1) % LOG_EVERY == 0 or step + 1 == recipe.steps:
            history.append([step + 1] + [round(sums[k][0] / sums[k][1], 3) if sums.get(k) else None
                                         for k in CURVE_COLUMNS])
            sums = {}
        if every() or step + 1 == recipe.steps:
            runtime.save_state(run_dir, {
                "recipe": asdict(recipe), "step": step + 1, "head": head.state_dict(),
                "layers": {str(i): layers[i].state_dict() for i in tuned_ids}, "history": history,
                "opt": opt.state_dict(), "rng": runtime.rng_state(), "elapsed": elapsed + time.monotonic() - t0})
    bar.close()
    elapsed += time.monotonic() - t0
    head.eval()
    tuned = {i: {k: v.detach().cpu().clone() for k, v in layers[i].named_parameters()} for i in tuned_ids}
    meta = {"base_model": recipe.base, "base_fingerprint": fingerprint, "mode": recipe.mode, "recipe": asdict(recipe)}
    final = PointHead(head.in_features, head.hidden, head.depth, readout=recipe.readout, layer_states=tuned, meta=meta)
    final.load_state_dict({k: v.cpu() for k, v in head.state_dict().items()})
    out.mkdir(parents=True, exist_ok=True)
    final.save(out)
    runtime.atomic_write_json(out / "training.json", {
        "recipe": asdict(recipe), "kind": "pixel", "steps": recipe.steps, "wall_seconds": round(elapsed, 1),
        "device": runtime.describe_device(dev), "base": recipe.base, "base_fingerprint": fingerprint,
        "loss_curve": {"columns": ["step", *CURVE_COLUMNS], "rows": history}})
    return out


def run_from_args(args: argparse.Namespace, out: Path, run_dir: Path) -> Path:
    """`python -m egokit.recipes.train pixel ...`: the recipe from the command line's options."""
    import egokit.training as runtime

    recipe = PixelRecipe.quick(args.seed) if args.quick else PixelRecipe(seed=args.seed)
    runtime.override_recipe(recipe, args)  # --lr: the head's rate
    if getattr(args, "mode", None):
        recipe.mode = args.mode
    if getattr(args, "base", None):
        recipe.base = args.base
    return train_pixel(recipe, out, run_dir, device=args.device, resume=args.resume)
