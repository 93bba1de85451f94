"""Second stage of the micro-CLIP recipe: tune the text tower (and optionally upper vision layers) on foils.

A CLIP trained only on (image, caption) pairs learns a bag of words: it barely tells "a circle left of a
square" from "a circle right of a square" (pair accuracy 0.6 on relation swaps after stage one), so no
attribution can point at the word the image contradicts. Stage two adds, for each training image, foils
of its caption (one word swapped so the caption is false: `ShapesWorld.foil`, held-out values excluded
on the train split) as extra negatives of that image — the hard-negative loss of NegCLIP (Yuksekgonul
et al., ICLR 2023) — next to stage one's contrastive and attribute-prompt losses, so zero-shot
classification and retrieval are kept.

By default only `text_model` and `text_projection` change: the vision tower, its projection and the logit
scale stay bit-identical, so the micro VLM (which copies the vision tower) and every vision-only method see
the same encoder. With `foil_vision_from` = k the vision encoder's layers k, k+1, ..., its final LayerNorm
and projection are tuned too (the text side alone cannot learn what the image embedding does not hold,
e.g. left against right); the layers before k stay bit-identical, so with k ≥ 2 the micro VLM, which
reads the output of layer 1, sees exactly the same features. Foils come from the train split; the
evaluation's foils come from the val and test splits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import egokit.training as runtime
from egokit.errors import InputError
from egokit.recipes.contrastive import soft_contrastive


def text_embeddings(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Unit-norm projected text embeddings."""
    out = model.text_model(input_ids=input_ids, attention_mask=attention_mask)
    return F.normalize(model.text_projection(out.pooler_output), dim=-1)


def foil_texts(world: Any, scenes: list, rng: np.random.Generator, per_image: int) -> tuple[list[str], list[int]]:
    """Up to `per_image` foils of each scene's caption (distinct kinds first); returns (texts, owner index)."""
    texts, owners = [], []
    for i, scene in enumerate(scenes):
        if not scene.objects:
            continue
        seen: set[str] = set()
        for _ in range(per_image * 3):
            if len(seen) == per_image:
                break
            try:
                foil = world.foil(scene, rng=rng)
            except InputError:  # nothing in this caption can be swapped
                break
            if foil.caption not in seen:
                seen.add(foil.caption)
                texts.append(foil.caption)
                owners.append(i)
    return texts, owners


def foil_loss(img: torch.Tensor, caption: torch.Tensor, foils: torch.Tensor, owners: list[int],
              scale: torch.Tensor) -> torch.Tensor:
    """Each image with foils against its own caption (the target) and its foils: cross-entropy over that set."""
    rows = sorted(set(owners))
    slots: dict[int, int] = {}
    columns = []
    for o in owners:  # the k-th foil of an image goes to column 1 + k
        slots[o] = slots.get(o, 0) + 1
        columns.append(slots[o])
    logits = img.new_full((img.shape[0], 1 + max(slots.values())), float("-inf"))
    logits[:, 0] = scale * (img * caption).sum(-1)
    owner = torch.tensor(owners, device=img.device)
    logits = logits.index_put((owner, torch.tensor(columns, device=img.device)), scale * (img[owner] * foils).sum(-1))
    logits = logits[rows]
    return F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long, device=img.device))


def stage_two_parameters(model: Any, vision_from: int = -1) -> list[torch.nn.Parameter]:
    """What stage two tunes: the text tower and its projection, and with `vision_from` = k ≥ 0 also the vision
    encoder's layers k, k+1, ..., its final LayerNorm and projection (the layers before k stay frozen)."""
    params = [*model.text_model.parameters(), *model.text_projection.parameters()]
    vision = model.vision_model
    layers = vision.encoder.layers
    if not -1 <= vision_from < len(layers):
        raise InputError(f"the vision tower has {len(layers)} layers (0–{len(layers) - 1}): cannot tune from "
                         f"layer {vision_from} (-1 keeps it frozen)")
    if vision_from >= 0:
        for layer in layers[vision_from:]:
            params += list(layer.parameters())
        params += [*vision.post_layernorm.parameters(), *model.visual_projection.parameters()]
    return params


def tune_on_foils(model: Any, data: Any, tokenizer: Any, recipe: Any, dev: torch.device) -> dict[str, float]:
    """Stage two (module docstring): `recipe.foil_steps` steps on the text tower (and the vision layers from
    `recipe.foil_vision_from`, when ≥ 0). Returns the last losses."""
    vision_from = int(recipe.foil_vision_from)
    params = stage_two_parameters(model, vision_from)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    decay = [p for p in params if p.ndim >= 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=recipe.foil_lr, betas=(0.9, 0.98))
    scale = model.logit_scale.exp().clamp(max=100.0).detach()
    model.train()
    model.vision_model.eval()
    logs: dict[str, float] = {}
    bar = tqdm(range(recipe.foil_steps), desc="micro-clip foils", mininterval=5.0, smoothing=0.05)
    for k in bar:
        lr = runtime.lr_at(k, recipe.foil_steps, recipe.foil_lr, max(1, recipe.foil_steps // 20))
        for g in opt.param_groups:
            g["lr"] = lr
        step = recipe.steps + k  # batches stage one never drew
        batch = data.batch(step, tokenizer, dev)
        with torch.set_grad_enabled(vision_from >= 0):  # only the tuned upper layers build a graph
            img = F.normalize(model.visual_projection(model.vision_model(pixel_values=batch["pixel_values"]).pooler_output),
                              dim=-1)
        txt = text_embeddings(model, batch["input_ids"], batch["attention_mask"])
        contrastive = soft_contrastive(scale * img @ txt.t(), batch["match"])
        prompt = img.new_zeros(())
        for enc, target in batch["prompts"].values():
            rows = target.any(1)
            if rows.any():
                lg = scale * img[rows] @ text_embeddings(model, enc["input_ids"], enc["attention_mask"]).t()
                t = target[rows].float()
                prompt = prompt + (-(F.log_softmax(lg, dim=1) * t / t.sum(1, keepdim=True)).sum(1).mean())
        prompt = prompt / len(batch["prompts"])
        scenes = batch["scenes"]
        rng = np.random.default_rng([recipe.seed, 4, step])
        foils, owners = foil_texts(data.world, scenes, rng, recipe.foil_count)
        fl = img.new_zeros(())
        if foils:
            cap = tokenizer([s.caption for s in scenes], padding=True, return_tensors="pt").to(dev)
            fen = tokenizer(foils, padding=True, return_tensors="pt").to(dev)
            fl = foil_loss(img, text_embeddings(model, cap["input_ids"], cap["attention_mask"]),
                           text_embeddings(model, fen["input_ids"], fen["attention_mask"]),
                           owners, scale)
        loss = contrastive + recipe.prompt_weight * prompt + recipe.foil_weight * fl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        logs = {"con": contrastive.item(), "prompt": prompt.item(), "foil": fl.item()}
        bar.set_postfix(**{k2: f"{v:.3f}" for k2, v in logs.items()}, lr=f"{lr:.1e}", refresh=False)
    bar.close()
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return logs


__all__ = ["foil_loss", "foil_texts", "stage_two_parameters", "text_embeddings", "tune_on_foils"]
