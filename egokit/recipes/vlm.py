"""Recipe of the micro VLM: a `LlavaForConditionalGeneration` on the micro CLIP's frozen vision tower.

Model: the micro CLIP's vision model (frozen, as in LLaVA), read at an early layer
(`vision_feature_layer=2` of 4, class token dropped) so that each of the 64 visual tokens stays about its
own 8×8 patch; LLaVA's two-layer GELU MLP projector; a Llama decoder (4 layers × width 128, 4 heads)
over a word-level vocabulary (ShapesWorld's `WORDS`, names included, + `<image>` + specials);
`LlavaProcessor` with `CLIPImageProcessorPil` at 64×64 and the kit's chat template.

Training data: `vlm_tasks.Mixture` on the train split of `ShapesWorld(seed=WORLD_SEED)` (no attribute
holdout: the VLM sees every colour and shape through the frozen tower; personal concepts of the train
partition only). Every step has one batch of single-image tasks and one of in-context tasks. Images
enter the language model as soft visual tokens (`egokit.models.context`: the prompt rendered by the chat
template with one image-token id per memory token, then `assemble` writes the projected tokens at those
positions; memories are token subsets), the same context Ego's memories and the evaluation use.

Losses: next-token cross-entropy on answers (each example's mean over its answer tokens, weighted: hard
negatives ×2), plus an auxiliary recognition head (training-only, not saved) that reads every query-image token
and says which memory's concept covers that patch (or
none) from the hidden state halfway up the decoder, so that the layers above can read a per-token
"this is the concept" signal when they answer.

The second recipe (`VlmRecipe.v2`, `--recipe v2`): the second mixture (`MixtureConfig.v2`: position, yes/no,
shape and colour questions drawn more often, hard negatives weighted ×3, the personalized caption's name
token weighted ×5 within its answer, 80 % cluttered references) under bfloat16 autocast. A stage may start
from an earlier micro VLM's projector and decoder (`init`, `--init`) on a new vision tower (`--clip`).
"""

from __future__ import annotations

import json
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
from egokit.data.shapesworld import ShapesWorld
from egokit.data.vocab import WORDS
from egokit.errors import InputError
from egokit.files import write_text_atomic
from egokit.models.context import Slot, assemble, pad, token_ids
from egokit.models.loading import LoadedModel, from_model, resolve_device
from egokit.models.settings import SETTINGS_FILE
from egokit.recipes.clip import PATCH, WORLD_SEED, ClipRecipe, build_clip, image_processor, to_pixels
from egokit.recipes.vlm_tasks import MAX_CONCEPTS, Example, Mixture, MixtureConfig, Visual
from egokit.zoo import ZOO_DIR

IGNORE = -100
#: the fields of `MixtureConfig` that are shares (probabilities), not weights
SHARES = ("concept_scene_share", "full_memory", "clutter", "positive", "hard_start", "hard_end", "object_memory")
#: the checkpoint's own settings, written beside its weights (`egokit.models.settings`): Ego asks the micro
#: VLM with the texts it was trained on
CHECKPOINT_SETTINGS = {"ego": {"prompt_format": "micro"}}


@dataclass
class VlmRecipe:
    """Every setting of a micro-VLM run (saved with the checkpoint)."""

    seed: int = 0
    steps: int = 2000
    batch: int = 32            # examples per group (single-image and in-context) per step
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.05
    width: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 384
    vision_feature_layer: int = 2
    match_weight: float = 0.3
    incontext_chunks: int = 2  # in-context examples run in this many length-sorted micro-batches
    world_seed: int = WORLD_SEED
    #: fields of `MixtureConfig` changed from its defaults (the second recipe: `MixtureConfig.v2`)
    mixture: dict[str, Any] = field(default_factory=dict)
    #: "bf16": forward and loss under `torch.autocast` in bfloat16 (weights and optimizer stay float32)
    precision: str = "fp32"
    #: a micro-VLM checkpoint folder whose projector and language model start the run (the vision tower
    #: always comes from the CLIP given); None: fresh weights
    init: str | None = None

    @classmethod
    def quick(cls, seed: int = 0) -> VlmRecipe:
        """A seconds-long run of a tiny model (for tests of the recipe itself)."""
        return cls(seed=seed, steps=2, batch=4, width=32, layers=1, heads=2, intermediate=64, warmup=1,
                   vision_feature_layer=1)

    @classmethod
    def v2(cls, seed: int = 0) -> VlmRecipe:
        """The second recipe (`--recipe v2`): the second mixture (`MixtureConfig.v2`) in bfloat16."""
        return cls(seed=seed, mixture=asdict(MixtureConfig.v2()), precision="bf16")

    def mixture_config(self) -> MixtureConfig:
        return MixtureConfig(**self.mixture)

    def change_mixture(self, changes: dict[str, float]) -> None:
        """Set fields of the mixture (`--mixture`): `hard_weight`, or a task's weight as `incontext.personal`;
        an unknown field or task is an `InputError` that lists the known ones."""
        config = asdict(self.mixture_config())
        for key, value in changes.items():
            group, _, task = key.partition(".")
            if group not in config or isinstance(config[group], dict) != bool(task):
                known = sorted(k for k, v in config.items() if not isinstance(v, dict))
                known += sorted(f"{k}.<task>" for k, v in config.items() if isinstance(v, dict))
                raise InputError(f"--mixture {key}: not a field of the mixture (known: {', '.join(known)})")
            if task:
                if task not in config[group] and group != "vqa_kinds":
                    raise InputError(f"--mixture {key}: {group} has the tasks {', '.join(sorted(config[group]))}")
                config[group][task] = float(value)
            else:
                config[group] = float(value)
        for key in SHARES:
            if not 0.0 <= config[key] <= 1.0:
                raise InputError(f"--mixture {key}={config[key]:g}: a share, between 0 and 1")
        for group in ("single", "incontext"):
            if not sum(config[group].values()) > 0:
                raise InputError(f"--mixture: the tasks of {group} all weigh 0; give one a weight above 0")
        self.mixture = config


# ---------------------------------------------------------------------------------------------- model


def vlm_tokenizer() -> Any:
    """Word-level tokenizer: specials, `<image>`, chat-template words, ShapesWorld's words (left padding)."""
    from egokit.models.text import word_tokenizer

    return word_tokenizer(WORDS, extra_special_tokens={"image_token": "<image>"}, model_max_length=1024)


def build_vlm(recipe: VlmRecipe, clip: Any) -> tuple[Any, Any]:
    """A `LlavaForConditionalGeneration` whose vision tower is `clip`'s vision model (weights copied),
    with a fresh projector and decoder, and its `LlavaProcessor`."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = vlm_tokenizer()
    vision = clip.config.vision_config.to_dict()
    vision["model_type"] = "clip_vision_model"
    w = recipe.width
    config = LlavaConfig(
        text_config={"model_type": "llama", "vocab_size": len(tok), "hidden_size": w,
                     "intermediate_size": recipe.intermediate, "num_hidden_layers": recipe.layers,
                     "num_attention_heads": recipe.heads, "num_key_value_heads": recipe.heads,
                     "max_position_embeddings": 1024, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
                     "tie_word_embeddings": False},
        vision_config=vision,
        image_token_id=tok.image_token_id,
        vision_feature_layer=recipe.vision_feature_layer,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = LlavaForConditionalGeneration._from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    tower = model.model.vision_tower
    getattr(tower, "vision_model", tower).load_state_dict(clip.vision_model.state_dict())
    for key in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(tok, key))
    processor = LlavaProcessor(image_processor=image_processor(), tokenizer=tok, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=tok.chat_template)
    return model, processor


def load_clip(clip_dir: Path | None, quick: bool, seed: int) -> Any:
    """The micro CLIP to take the vision tower from: a folder, the shipped one, or (quick runs with
    no CLIP built) a tiny random one."""
    from transformers import CLIPModel

    folder = clip_dir or ZOO_DIR / "micro-clip"
    if (folder / "config.json").exists():
        return CLIPModel.from_pretrained(folder, dtype=torch.float32)
    if quick and clip_dir is None:
        return build_clip(ClipRecipe.quick(seed))[0]
    raise FileNotFoundError(f"no micro CLIP in {folder}: train it first (python -m egokit.recipes.train clip)")


@torch.no_grad()
def vision_hidden(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """The frozen tower's hidden state at `vision_feature_layer` without the class token (B, 64, C),
    computed with only the layers it needs (equal to what `get_image_features` reads)."""
    tower = model.model.vision_tower
    vm = getattr(tower, "vision_model", tower)
    h = vm.pre_layrnorm(vm.embeddings(pixel_values))
    for layer in vm.encoder.layers[:model.config.vision_feature_layer]:
        h = layer(h, None)
        h = h[0] if isinstance(h, tuple) else h
    return h[:, 1:]


# ---------------------------------------------------------------------------------------------- batches


def _visuals(ex: Example) -> list[Visual]:
    return [p for p in ex.pieces if isinstance(p, Visual)]


def encode(loaded: LoadedModel, pieces: list[str | Slot], answer: str | None = None) -> tuple[list[int], list[int]]:
    """Token ids of a one-turn chat prompt (`egokit.models.context.token_ids`) followed by the answer and
    eos, and its labels (IGNORE except on the answer and its eos)."""
    tok = loaded.processor.tokenizer
    ids, _ = token_ids(loaded, pieces)
    labels = [IGNORE] * len(ids)
    if answer is not None:
        target = [*tok.encode(answer, add_special_tokens=False), tok.eos_token_id]
        ids += target
        labels += target
    return ids, labels


def collate(examples: list[Example], loaded: LoadedModel, n_tokens: int, images: list[np.ndarray],
            stress_weight: float = 1.0) -> dict[str, Any]:
    """Token ids (right padded), labels, per-example weights, per-token weights (`stress_weight` on the
    answer tokens of an example's `stress` words, else 1), aux labels, the images these examples use and
    the memory plan (which image, which tokens, in slot order)."""
    tok = loaded.processor.tokenizer
    ids, labels, match, token_weights = [], [], [], []
    plan: list[tuple[int, np.ndarray | None]] = []
    local: dict[int, int] = {}
    for ex in examples:
        pieces = [Slot(n_tokens if p.keep is None else len(p.keep)) if isinstance(p, Visual) else p
                  for p in ex.pieces]
        i, lab = encode(loaded, pieces, ex.answer)
        m = np.full(len(i), IGNORE, dtype=np.int64)
        pos = np.flatnonzero(np.array(i) == tok.image_token_id)
        at = 0
        for v in _visuals(ex):
            n = n_tokens if v.keep is None else len(v.keep)
            if v.match is not None:
                m[pos[at:at + n]] = v.match if v.keep is None else v.match[v.keep]
            plan.append((local.setdefault(v.image, len(local)), v.keep))
            at += n
        stressed = {t for word in ex.stress for t in tok.encode(word, add_special_tokens=False)}
        token_weights.append([stress_weight if label != IGNORE and label in stressed else 1.0 for label in lab])
        ids.append(i)
        labels.append(lab)
        match.append(m.tolist())
    input_ids = pad(ids, tok.pad_token_id)
    return {
        "input_ids": input_ids,
        "attention_mask": pad([[1] * len(i) for i in ids], 0),
        "labels": pad(labels, IGNORE),
        "token_weights": _pad_float(token_weights),
        "match": pad(match, IGNORE),
        "weights": torch.tensor([ex.weight for ex in examples], dtype=torch.float32),
        "plan": plan,
        "images": np.stack([images[i] for i in local]),
    }


def _pad_float(rows: list[list[float]]) -> torch.Tensor:
    out = torch.ones((len(rows), max(len(r) for r in rows)), dtype=torch.float32)
    for k, r in enumerate(rows):
        out[k, :len(r)] = torch.tensor(r, dtype=torch.float32)
    return out


def length_chunks(examples: list[Example], n_tokens: int, chunks: int) -> list[list[Example]]:
    """Examples sorted by prompt length and cut into `chunks` groups (less padding per micro-batch)."""
    def length(ex: Example) -> int:
        return sum(n_tokens if p.keep is None else len(p.keep) for p in _visuals(ex)) + 4 * len(ex.pieces)

    order = sorted(range(len(examples)), key=lambda i: length(examples[i]))
    size = -(-len(examples) // chunks)
    return [[examples[i] for i in order[k:k + size]] for k in range(0, len(order), size)]


class MatchHead(nn.Module):
    """Training-only head: which memory's concept (or none) each query-image token shows."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, 1 + MAX_CONCEPTS)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)


def batch_losses(model: Any, head: MatchHead, batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """Answer loss (per example, the mean over its answer tokens weighted by `token_weights`; over examples,
    the mean weighted by `weights`) and the auxiliary recognition loss."""
    pixels = to_pixels(batch["images"], device)
    feats = model.model.multi_modal_projector(vision_hidden(model, pixels))
    memories = [feats[i] if keep is None else feats[i, torch.as_tensor(keep, device=device)]
                for i, keep in batch["plan"]]
    input_ids = batch["input_ids"].to(device)
    embeds = assemble(model, input_ids, memories, model.config.image_token_id)
    lm_out = model.model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"].to(device),
                                        output_hidden_states=True)
    hidden = lm_out.last_hidden_state
    logits = model.lm_head(hidden[:, :-1])
    labels = batch["labels"].to(device)[:, 1:]
    tok_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                               reduction="none").view(labels.shape)
    counted = (labels != IGNORE).float() * batch["token_weights"].to(device)[:, 1:]
    per_example = (tok_loss * counted).sum(1) / counted.sum(1).clamp(min=1e-6)
    w = batch["weights"].to(device)
    answer = (per_example * w).sum() / w.sum()
    match = batch["match"].to(device)
    if (match != IGNORE).any():
        middle = lm_out.hidden_states[len(lm_out.hidden_states) // 2]
        aux = F.cross_entropy(head(middle).reshape(-1, 1 + MAX_CONCEPTS), match.reshape(-1), ignore_index=IGNORE)
    else:
        aux = answer.new_zeros(())
    return {"answer": answer, "match": aux}


# ---------------------------------------------------------------------------------------------- training


def load_init(model: Any, folder: str) -> None:
    """Copy the projector and language model of the micro VLM in `folder` into `model` (its vision tower is
    left as built: the CLIP given); a folder that is not a micro VLM of the same shape fails with a message."""
    from transformers import LlavaForConditionalGeneration

    path = runtime.init_folder(folder, "llava", "micro VLM")
    source = LlavaForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
    for name in ("multi_modal_projector", "language_model"):
        mine, theirs = getattr(model.model, name), getattr(source.model, name)
        if {k: v.shape for k, v in mine.state_dict().items()} != {k: v.shape for k, v in theirs.state_dict().items()}:
            raise InputError(f"--init {folder}: its {name} has another shape than this recipe's")
        mine.load_state_dict(theirs.state_dict())
    if model.lm_head.weight.shape != source.lm_head.weight.shape:
        raise InputError(f"--init {folder}: its vocabulary differs from this recipe's")
    model.lm_head.load_state_dict(source.lm_head.state_dict())


def train_vlm(recipe: VlmRecipe, out: Path, run_dir: Path, clip_dir: Path | None = None, device: str = "auto",
              resume: bool = True, checkpoint_seconds: float = 180.0, quick: bool | None = None,
              max_seconds: float | None = None) -> Path:
    """Train (or resume) the micro VLM and export it in fp16 to `out`. Returns `out`.

    With `max_seconds`, a run that reaches that much wall time saves its state and raises
    `TimeLimitReached` (nothing is exported); the same call resumes it."""
    quick = recipe.width < 64 if quick is None else quick
    dev = resolve_device(device)
    runtime.set_threads(dev)
    runtime.seed_everything(recipe.seed)
    clip = load_clip(clip_dir, quick, recipe.seed)
    model, processor = build_vlm(recipe, clip)
    del clip
    if recipe.init:
        load_init(model, recipe.init)
    model.to(dev)
    model.model.vision_tower.requires_grad_(False).eval()
    model.model.multi_modal_projector.train()
    model.model.language_model.train()
    head = MatchHead(recipe.width).to(dev)
    params = [p for p in [*model.parameters(), *head.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": recipe.weight_decay},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=recipe.lr, betas=(0.9, 0.98))
    start, elapsed = 0, 0.0
    state = runtime.load_state(run_dir, dev) if resume else None
    segments = runtime.schedule_segments(None, 0, recipe.steps)
    if state is not None and runtime.same_recipe(state.get("recipe"), asdict(recipe)):
        model.load_state_dict(state["model"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        start, elapsed = int(state["step"]), float(state["elapsed"])
        segments = runtime.schedule_segments(state, start, recipe.steps)
        runtime.restore_rng_state(state["rng"])
        print(f"resuming micro-vlm training at step {start}", flush=True)
    world = ShapesWorld(seed=recipe.world_seed, split="train")
    n_tokens = (world.size // PATCH) ** 2
    config = recipe.mixture_config()
    mixture = Mixture(world, recipe.seed, n_tokens, config)
    loaded = from_model(model, processor, name="micro-vlm")
    every = runtime.Every(checkpoint_seconds)
    log = runtime.LossLog(run_dir, fresh=start == 0)
    t0 = time.monotonic()
    bar = tqdm(range(start, recipe.steps), initial=start, total=recipe.steps, desc="micro-vlm",
               mininterval=5.0, smoothing=0.05)
    for step in bar:
        lr = runtime.lr_at(step, recipe.steps, recipe.lr, recipe.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        rng = np.random.default_rng([recipe.seed, 3, step])
        progress = step / max(1, recipe.steps - 1)
        opt.zero_grad(set_to_none=True)
        logs, curve = {}, {}
        for group in ("single", "incontext"):
            images: list[np.ndarray] = []
            if group == "single":
                examples = [mixture.single(rng, images) for _ in range(recipe.batch)]
                chunks = [examples]
            else:
                examples = [mixture.incontext(rng, images, progress) for _ in range(recipe.batch)]
                chunks = length_chunks(examples, n_tokens, recipe.incontext_chunks)
            answer = match = 0.0
            for chunk in chunks:
                share = len(chunk) / len(examples)
                with runtime.autocast(dev, recipe.precision):
                    losses = batch_losses(model, head, collate(chunk, loaded, n_tokens, images, config.name_weight),
                                          dev)
                loss = losses["answer"] + recipe.match_weight * losses["match"]
                (share * loss).backward()
                answer += share * losses["answer"].item()
                match += share * losses["match"].item()
            logs[group[:2]] = f"{answer:.3f}"
            curve[group] = answer
            if group == "incontext":
                logs["m"] = f"{match:.3f}"
                curve["match"] = match
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        bar.set_postfix(**logs, lr=f"{lr:.1e}", refresh=False)
        log(step, {**curve, "lr": lr})
        out_of_time = max_seconds is not None and time.monotonic() - t0 >= max_seconds and step + 1 < recipe.steps
        if every() or out_of_time or step + 1 == recipe.steps:
            runtime.save_state(run_dir, {
                "recipe": asdict(recipe), "step": step + 1, "model": model.state_dict(), "head": head.state_dict(),
                "opt": opt.state_dict(), "rng": runtime.rng_state(), "elapsed": elapsed + time.monotonic() - t0,
                "segments": segments})
        if out_of_time:
            bar.close()
            raise runtime.TimeLimitReached(step + 1, recipe.steps, run_dir)
    bar.close()
    elapsed += time.monotonic() - t0
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    runtime.export_fp16(model, out)
    processor.save_pretrained(out)
    write_text_atomic(out / SETTINGS_FILE, json.dumps(CHECKPOINT_SETTINGS) + "\n")
    runtime.atomic_write_json(out / "training.json", {
        "recipe": asdict(recipe), "kind": "vlm", "steps": recipe.steps, "segments": segments,
        "wall_seconds": round(elapsed, 1),
        "device": runtime.describe_device(dev), "clip": str(clip_dir) if clip_dir else "micro-clip"})
    runtime.copy_losses(run_dir, out)
    return out
