"""Metrics of the micro CLIP on the test split of `ShapesWorld(seed=WORLD_SEED)` (definitions below).

- `clip.zero_shot_acc`: one-object test scenes whose object shows no held-out value or combination;
  the object's colour, shape and pattern are each classified by the nearest zero-shot prompt
  (`clip_texts.ZERO_SHOT_TEMPLATES`, every value of the attribute a candidate, held-out ones
  included); the mean of the three accuracies (each also reported as `clip.zero_shot_acc_<attr>`).
- `clip.zero_shot_acc_heldout`: the same on one-object scenes showing a held-out *value* (a pink object:
  its colour; a hexagon: its shape), mean over those values; `clip.heldout_chance` is the mean chance
  level (1 / number of candidates). `clip.zero_shot_acc_heldout_combos`: held-out *combinations*
  (purple triangles: colour and shape; orange striped objects: colour and pattern).
- `clip.retrieval_r1`: groups of 100 test scenes (1–3 objects, none held out); for each image, whether
  its own caption is the most similar of the group's 100 captions; the mean over images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from egokit.data.holdout import DEFAULT_HOLDOUT, Holdout
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import COLORS, PATTERNS, SHAPES
from egokit.recipes.clip_texts import zero_shot_prompts

ATTRIBUTE_VALUES = {"color": COLORS, "shape": SHAPES, "pattern": PATTERNS}


@torch.no_grad()
def embed_images(model: Any, processor: Any, images: list[np.ndarray], batch: int = 100) -> torch.Tensor:
    """L2-normalised image embeddings through the shipped processor."""
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(images), batch):
        px = processor(images=list(images[i:i + batch]), return_tensors="pt")["pixel_values"].to(device)
        feats = model.get_image_features(pixel_values=px.to(next(model.parameters()).dtype))
        feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
        out.append(F.normalize(feats.float(), dim=-1))
    return torch.cat(out)


@torch.no_grad()
def embed_texts(model: Any, processor: Any, texts: list[str], batch: int = 200) -> torch.Tensor:
    """L2-normalised text embeddings."""
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(texts), batch):
        enc = processor.tokenizer(list(texts[i:i + batch]), padding=True, return_tensors="pt").to(device)
        feats = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
        out.append(F.normalize(feats.float(), dim=-1))
    return torch.cat(out)


def _classify(model: Any, processor: Any, images: list[np.ndarray], attribute: str,
              truth: list[str]) -> float:
    values = ATTRIBUTE_VALUES[attribute]
    text = embed_texts(model, processor, zero_shot_prompts(attribute, values))
    img = embed_images(model, processor, images)
    pred = (img @ text.t()).argmax(dim=1).tolist()
    return float(np.mean([values[p] == t for p, t in zip(pred, truth)])) if truth else float("nan")


def evaluate_clip(model: Any, processor: Any, seed: int = 0, n: int = 300, world_seed: int = 0,
                  holdout: Holdout | None = DEFAULT_HOLDOUT,
                  progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """The micro CLIP's metrics (module docstring); `n` scenes per metric, drawn from `seed`."""
    step = progress or (lambda k: None)
    one = ShapesWorld(seed=world_seed, split="test", holdout=holdout, min_objects=1, max_objects=1)
    rng = np.random.default_rng([seed, 11])
    start = int(rng.integers(1 << 20))
    known = [s for s in one.scenes(3 * n, start) if not one.is_held_out(s.objects[0])][:n]
    out: dict[str, float] = {}
    accs = []
    for attr in ("color", "shape", "pattern"):
        acc = _classify(model, processor, [s.image for s in known], attr,
                        [getattr(s.objects[0], attr) for s in known])
        out[f"clip.zero_shot_acc_{attr}"] = acc
        accs.append(acc)
    out["clip.zero_shot_acc"] = float(np.mean(accs))
    step(1)

    held, chance = [], []
    if holdout is not None:
        for attr, values in (("color", holdout.colors), ("shape", holdout.shapes), ("pattern", holdout.patterns)):
            for v in values:
                scenes = [one.scene_with(start + i, **{attr: v}) for i in range(max(1, n // 2))]
                held.append(_classify(model, processor, [s.image for s in scenes], attr, [v] * len(scenes)))
                chance.append(1.0 / len(ATTRIBUTE_VALUES[attr]))
        combos = []
        for combo in holdout.combos:
            req = {ATTR_OF[v]: v for v in combo}
            scenes = [one.scene_with(start + i, **req) for i in range(max(1, n // 4))]
            for attr, v in req.items():
                if attr in ATTRIBUTE_VALUES:
                    combos.append(_classify(model, processor, [s.image for s in scenes], attr, [v] * len(scenes)))
        out["clip.zero_shot_acc_heldout_combos"] = float(np.mean(combos)) if combos else float("nan")
    out["clip.zero_shot_acc_heldout"] = float(np.mean(held)) if held else float("nan")
    out["clip.heldout_chance"] = float(np.mean(chance)) if chance else float("nan")
    step(1)

    world = ShapesWorld(seed=world_seed, split="test", holdout=holdout)
    scenes = [s for s in world.scenes(3 * n, start) if not any(world.is_held_out(o) for o in s.objects)]
    groups = max(1, min(len(scenes), n) // 100)
    hits = []
    for g in range(groups):
        chunk = scenes[100 * g:100 * (g + 1)]
        img = embed_images(model, processor, [s.image for s in chunk])
        txt = embed_texts(model, processor, [s.caption for s in chunk])
        sim = img @ txt.t()
        own = sim.diagonal()
        # ties count against: an image's caption must beat every other caption of the group
        others = sim.masked_fill(torch.eye(len(chunk), dtype=torch.bool), -float("inf")).max(dim=1).values
        hits += (own > others).tolist()
    out["clip.retrieval_r1"] = float(np.mean(hits))
    step(1)
    return out


ATTR_OF = {**{v: "color" for v in COLORS}, **{v: "shape" for v in SHAPES}, **{v: "pattern" for v in PATTERNS},
           "small": "size", "large": "size"}
