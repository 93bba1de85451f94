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
- `clip.foil_pair_acc_<kind>`: on the same scenes, how often the image is closer to its caption than to a
  foil of it (one word swapped so the caption is false: `colour`, `shape`, `pattern`, `size`, `relation`),
  up to `n` pairs per kind (`ShapesWorld.hard_negatives`, one foil of each kind per scene); `order`: the
  caption with two neighbouring objects swapped (not a one-word foil). `clip.foil_pair_acc`: the mean over
  the five foil kinds.
- `clip.token_locality_layer2` (and `_own`, `_far`): `patch_targets.locality_probe` on the patch tokens of
  vision layer 2 (`hidden_states[2]`, class token dropped: what the micro VLM reads) of ordinary test scenes:
  how well a patch's own token, against a far token, tells the colour and shape under it. The micro VLM's
  `vlm.token_locality` is the same probe after its projector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from egokit.data.captions import FOIL_KINDS
from egokit.data.holdout import DEFAULT_HOLDOUT, Holdout
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import COLORS, PATTERNS, SHAPES
from egokit.recipes.clip_texts import zero_shot_prompts
from egokit.recipes.patch_targets import locality_probe

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
                  progress: Callable[[int], None] | None = None, split: str = "test") -> dict[str, float]:
    """The micro CLIP's metrics (module docstring); `n` scenes per metric, drawn from `seed`, of the test
    split (`split="val"`: the validation split, where recipes are chosen)."""
    step = progress or (lambda k: None)
    one = ShapesWorld(seed=world_seed, split=split, holdout=holdout, min_objects=1, max_objects=1)
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

    world = ShapesWorld(seed=world_seed, split=split, holdout=holdout)
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
    out.update(foil_pair_accuracy(model, processor, world, scenes, n, np.random.default_rng([seed, 12])))
    local = list(world.scenes(max(20, n // 4), start + 5 * n))
    probe = locality_probe(patch_tokens(model, processor, [s.image for s in local], LOCALITY_LAYER), local)
    out.update({f"clip.token_locality_layer{LOCALITY_LAYER}{k}": v for k, v in probe.items()})
    step(1)
    return out


#: the vision layer whose patch tokens the locality probe reads (the micro VLM's `vision_feature_layer`)
LOCALITY_LAYER = 2


@torch.no_grad()
def patch_tokens(model: Any, processor: Any, images: list[np.ndarray], layer: int, batch: int = 100) -> np.ndarray:
    """(n_images, n_patches, width) float32: the patch tokens of `hidden_states[layer]`, class token dropped."""
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(images), batch):
        px = processor(images=list(images[i:i + batch]), return_tensors="pt")["pixel_values"].to(device)
        hidden = model.vision_model(pixel_values=px.to(next(model.parameters()).dtype),
                                    output_hidden_states=True).hidden_states[layer]
        out.append(hidden[:, 1:].float().cpu().numpy())
    return np.concatenate(out)


def foil_pair_accuracy(model: Any, processor: Any, world: ShapesWorld, scenes: list, n: int,
                       rng: np.random.Generator) -> dict[str, float]:
    """`clip.foil_pair_acc*` (module docstring): per kind, whether the image beats each negative with its caption."""
    pairs: dict[str, list[tuple[int, str]]] = {k: [] for k in (*FOIL_KINDS, "order")}
    for i, scene in enumerate(scenes):
        for kind, text in world.hard_negatives(scene, rng):
            if len(pairs[kind]) < n:
                pairs[kind].append((i, text))
    used = sorted({i for kind in pairs.values() for i, _ in kind})
    if not used:
        return {}
    row = {i: r for r, i in enumerate(used)}
    img = embed_images(model, processor, [scenes[i].image for i in used])
    own = (img * embed_texts(model, processor, [scenes[i].caption for i in used])).sum(-1)
    out = {}
    for kind, items in pairs.items():
        if items:
            neg = embed_texts(model, processor, [t for _, t in items])
            rows = torch.tensor([row[i] for i, _ in items])
            out[f"clip.foil_pair_acc_{kind}"] = float((own[rows] > (img[rows] * neg).sum(-1)).float().mean())
    kinds = [out[f"clip.foil_pair_acc_{k}"] for k in FOIL_KINDS if f"clip.foil_pair_acc_{k}" in out]
    out["clip.foil_pair_acc"] = float(np.mean(kinds))
    return out


ATTR_OF = {**{v: "color" for v in COLORS}, **{v: "shape" for v in SHAPES}, **{v: "pattern" for v in PATTERNS},
           "small": "size", "large": "size"}
