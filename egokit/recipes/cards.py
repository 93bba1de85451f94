"""Model cards (`README.md`) of the shipped micro models, written from `training.json` and an eval run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from egokit.files import write_text_atomic
from egokit.training import folder_size
from egokit.zoo import ZOO_DIR

_CLIP_BODY = """\
A `CLIPModel` trained on ShapesWorld scenes, shipped inside egokit so that every method
runs offline on a model that really learned something. It loads like any checkpoint folder:
`CLIPModel.from_pretrained(folder)` or `egokit.load("micro-clip")` (fp16 on disk, float32 on CPU).

## Model
- Vision: ViT {layers} layers × width {width}, {heads} heads, patch 8 on 64×64 RGB → a class token + an
  8×8 grid of patch tokens. Text: {layers} layers × width {width} over a word-level tokenizer of
  ShapesWorld's closed vocabulary (bos … eos, at most {text_max} tokens; pooled at eos). Embedding width {width}.
- Processor: `CLIPProcessor` = `CLIPImageProcessorPil` (resize shortest side to 64, centre crop 64,
  CLIP mean/std) + the word-level tokenizer.

## Data and held-out set H
The train split of `ShapesWorld(seed={world_seed}, holdout="default")`, generated on the fly: ordinary
scenes (1–3 objects) and personal-concept scenes (two-tone objects with marks, queries and reference
views of the train partition of concept identities). H = ShapesWorld's documented default holdout:
{holdout}. The model never saw a pink object or a hexagon (new values), a purple triangle or an orange
striped object (new combinations): the imperfect encoder the LoRSU method has to fix. The words of H
values are in the vocabulary, and their prompts take part in the prompt loss as candidates that are
never true (no training image shows them), so an H image goes to the nearest value the model knows (a
pink object is called red or purple): its zero-shot accuracy on H values is at or below chance (the
table below), not above it by default.

Texts: full captions (sometimes after "a photo depicts", CLIP4DM's prefix) or short one-object
descriptions; contrastive targets mark every image a text is true of. Zero-shot prompt templates:
`a photo of a {{color}} object .`, `a photo of a {{shape}} .`, `a photo of a {{pattern}} object .`

Losses: symmetric InfoNCE with multi-positive targets + an attribute-prompt loss (each image against
the zero-shot prompts of every colour, shape and pattern; the values its objects show are the targets)
+ a dense auxiliary loss (linear heads on the
patch tokens of vision layers {dense_layers} predict the shape, colour, pattern and mark under each
patch; the heads are dropped at save time). It keeps patch tokens local.
"""

_CLIP_V2_TEXT = """\
Recipe v2 (`--recipe v2`): from the first step, hard negatives in the style of NegCLIP (weight
{negative_weight}): each image's caption against every caption of the batch and the batch's hard negatives,
up to {negatives_per_image} per image — its caption's relation foil and the caption with two neighbouring
objects swapped whenever it has them, then foils of other kinds (colour, shape, pattern, size: one word
swapped so the caption is false) at random; both towers learn from them. The dense heads also predict each
patch's object size and the 3×3 cell that holds the object's centre ({dense_targets}), so size and place are
in the patch tokens the class token reads. Forward pass: {precision_text}.
"""

_VLM_V2_TEXT = """\
Recipe v2 (`--recipe v2`): the second mixture — position questions drawn ×{position}, yes/no ×{yesno}, shape
and colour ×{shape}, hard negatives weighted ×{hard_weight} (up to {hard_end_pct} % of the negatives by the end), the
personalized caption ({personal_pct} % of the in-context examples) with its name's token weighted ×{name_weight}
within the answer, {clutter_pct} % cluttered references.{object_text} Forward pass: {precision_text}.
"""

_VLM_BODY = """\
A `LlavaForConditionalGeneration` trained on ShapesWorld, shipped inside egokit for the Ego and
PixelLLM methods. It loads like any checkpoint folder: `LlavaForConditionalGeneration.from_pretrained
(folder)` or `egokit.load("micro-vlm")` (fp16 on disk, float32 on CPU).

## Model
- Vision tower: the micro CLIP's vision model, frozen (weights copied from `{clip}`), read at
  layer {vision_feature_layer} of {vision_layers} (`vision_feature_layer={vision_feature_layer}`, class token dropped) so that
  the 64 visual tokens (8×8 grid, raster order) stay local; LLaVA's GELU MLP projector.
- Language model: Llama decoder, {layers} layers × width {width}, {heads} heads; word-level vocabulary = ShapesWorld's
  words (names of personal concepts included) + `<image>` + specials.
- Processor: `LlavaProcessor` (`CLIPImageProcessorPil` at 64×64, patch 8, 64 image tokens per image)
  with the chat template `USER: <image> question ASSISTANT: answer</s>`.

## What it was trained to do
All with the chat template; names of personal concepts are drawn at random per example from the
reserved pool, so a name means nothing until the context binds it.
- `describe the image .` → caption, objects left to right (`a large red striped circle left of ...`);
- short VQA: `how many objects are there ?`, `what color is the circle ?`, shape, pattern,
  `where is the red circle ?`, `is there a blue square ?`, relations → short answers;
- `describe the subject .` → keywords (`red striped circle`, `purple and green cross with a white ring`);
- `what percentage of the image does the subject cover ?` → `10` … `100` (Ego's dynamic budget);
- personalization in context: `[memory] this is <name> . [image] is <name> in this image ?` → yes/no,
  and `[memory] this is <name> . [image] describe the image .` → a caption that uses the name; several
  concepts in one context (`[m1] this is bix . [m2] this is dax . [image] is dax in this image ?`).

A *memory* is a reference view's projected visual tokens (what the decoder receives for the image),
all 64 or a random subset of 10–100 % in raster order (never chosen by masks or attention in
training), placed at image-token positions through `inputs_embeds`: one `<image>` token id per
memory token, then `egokit.models.context.assemble` writes the rows (exactly what LLaVA does with
`pixel_values`, so 64 tokens of an image give the same logits as the image itself). References are
alone or cluttered with the concept's companions; queries are positives, hard negatives (same shape
and colours, another mark; weighted ×2, more of them as training goes on), easy negatives and
distractor-only scenes. A training-only head (dropped at save time) taught the decoder which query
tokens show which memory's concept.

## Token locality (`vlm.token_locality`)
On ordinary test scenes, the projected visual tokens (the decoder's input embeddings) of object patches
are probed linearly (ridge regression on one-hot labels, fit on half the scenes, scored on the other
half) for the colour and the shape of the object under the patch. A_own reads the patch's own token;
A_far reads the token 4 rows and 4 columns away (wrapping around, so never on the same object).
token_locality = A_own − A_far (mean of colour and shape): 1 is perfectly local, 0 means a token says as
much about a far patch as about its own. Both parts are in the table (`_own`, `_far`).

## Data
The train split of `ShapesWorld(seed={world_seed})` (no attribute holdout for the VLM: it sees every
colour and shape through the frozen tower), generated on the fly; personal concepts from the train
partition of concept identities only (the test split's concepts are new to it).
"""


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _segment_lines(training: dict[str, Any], command: str) -> list[str]:
    """For a run extended on resume: the commands that repeat it, one per learning-rate schedule."""
    segments = training.get("segments") or []
    if len(segments) < 2:
        return []
    lines = ["- commands: this checkpoint was trained in stages, each resuming the previous one's state with a "
             "longer schedule (the learning rate follows the new length from the step reached); to repeat it:"]
    for first, length in segments:
        lines.append(f"  `{command} --steps {length}`" + (f" (resumes at step {first})" if first else ""))
    return lines


def folder_argument(folder: Path) -> str:
    """How a command names `folder`: its zoo name for a shipped checkpoint, else the path."""
    folder = Path(folder)
    return folder.name if folder.resolve().parent == ZOO_DIR.resolve() else str(folder)


def recipe_line(training: dict[str, Any], command: str) -> list[str]:
    """The card's command line(s): per schedule for a run extended on resume; the recorded command of the
    run (`training.json`'s "command", written by `python -m egokit.recipes.train`) with its steps; else the
    default recipe's command."""
    steps = training["recipe"]["steps"]
    recorded = training.get("command")
    return (_segment_lines(training, recorded or command)
            or [f"- command: `{recorded} --steps {steps}`" if recorded else f"- command: `{command}` (default recipe)"])


def write_card(folder: Path, kind: str, metrics: dict[str, Any]) -> Path:
    """Write `folder/README.md` for a micro model of `kind` ("clip" or "vlm") with these metrics (none yet:
    the card says how to measure them)."""
    folder = Path(folder)
    training = json.loads((folder / "training.json").read_text())
    recipe = training["recipe"]
    config = json.loads((folder / "config.json").read_text())
    name = folder.name
    prefix = f"{kind}."
    rows = [(k, v) for k, v in sorted(metrics.items()) if k.startswith(prefix)]
    command = f"python -m egokit.recipes.train {kind} --seed {recipe['seed']}"
    if kind == "clip":
        body = _CLIP_BODY.format(**{**recipe, "holdout": _holdout_text(recipe.get("holdout"))})
        if recipe.get("negative_weight", 0.0) > 0:
            body += "\n" + _CLIP_V2_TEXT.format(**{**recipe, "dense_targets": ", ".join(recipe["dense_targets"]),
                                                  "precision_text": _precision_text(recipe)})
        title = "micro-clip: a CLIP trained on ShapesWorld"
    else:
        body = _VLM_BODY.format(vision_layers=config["vision_config"]["num_hidden_layers"],
                                clip=training.get("clip", "micro-clip"), **recipe)
        mix = recipe.get("mixture") or {}
        if mix:
            kinds = mix.get("vqa_kinds", {})
            body += "\n" + _VLM_V2_TEXT.format(
                position=kinds.get("position", 1), yesno=kinds.get("yesno", 1), shape=kinds.get("shape", 1),
                hard_weight=mix["hard_weight"], hard_end_pct=round(100 * mix["hard_end"]),
                personal_pct=round(100 * mix["incontext"]["personal"] / sum(mix["incontext"].values())),
                name_weight=mix["name_weight"], clutter_pct=round(100 * mix["clutter"]),
                object_text=_object_memory_text(mix), precision_text=_precision_text(recipe))
        title = "micro-vlm: a LLaVA-style VLM trained on ShapesWorld"
    size_mb = folder_size(folder) / 1e6
    lines = [
        f"# {title}", "", body,
        "## Recipe", "",
        *recipe_line(training, command),
        *_start_lines(recipe),
        f"- {recipe['steps']} steps, batch {recipe['batch']}"
        f"{' per micro-batch, two micro-batches per step' if kind == 'vlm' else ''}, AdamW, "
        f"lr {recipe['lr']} with warm-up and cosine decay",
        f"- seed: {recipe['seed']}; ShapesWorld seed {recipe['world_seed']}",
        f"- steps: {training['steps']}; wall time: {training['wall_seconds'] / 60:.1f} min on {training['device']}",
        "  (a shared machine: wall time depends on its load)",
        f"- files: fp16 safetensors, {size_mb:.1f} MB in this folder",
        *_loss_lines(folder),
        "",
        "## Metrics on the held-out test split",
        "",
        *(_metrics_lines(kind, metrics, rows, folder) if rows else _unmeasured_lines(kind, folder)),
        "",
    ]
    text = "\n".join(lines)
    path = folder / "README.md"
    write_text_atomic(path, text)
    path.chmod(0o644)
    _ = name
    return path


def _object_memory_text(mix: dict[str, Any]) -> str:
    share = mix.get("object_memory", 0.0)
    if not share:
        return ""
    return (f" {round(100 * share)} % of the memories keep only the 10–30 % of the reference's tokens that cover "
            "the concept most (from its mask, as a perfect selector would; Ego's own selection is never used in "
            "training).")


def _precision_text(recipe: dict[str, Any]) -> str:
    return "bfloat16 autocast (weights and optimizer in float32)" if recipe.get("precision") == "bf16" else "float32"


def _start_lines(recipe: dict[str, Any]) -> list[str]:
    """Where a later stage started, and the loss weights it changed from the recipe's defaults."""
    lines = []
    if recipe.get("init"):
        frozen = recipe.get("vision_from", 0)
        lines.append(f"- starts from the weights of `{recipe['init']}` (`--init`; training-only heads and the "
                     "optimizer start fresh)" + (f"; vision layers below {frozen} kept as they were" if frozen else "")
                     + ("; each stage's command: `stages/README.md`" if str(recipe["init"]).startswith("stages/") else ""))
    weights = {k: v for k, v in (recipe.get("prompt_weights") or {}).items() if v != 1.0}
    weights.update({f"dense {k}": v for k, v in (recipe.get("dense_target_weights") or {}).items() if v != 1.0})
    if weights:
        lines.append("- loss weights changed: " + ", ".join(f"{k} ×{v:g}" for k, v in weights.items()))
    return lines


def _loss_lines(folder: Path) -> list[str]:
    """The loss curve in `losses.jsonl` (written by the training run), at five points of the run."""
    from egokit.training import read_losses

    rows = read_losses(folder)
    if not rows:
        return []
    picks = sorted({round(i * (len(rows) - 1) / 4) for i in range(5)})
    names = [k for k in rows[0] if k not in ("step", "lr")]
    return ["- losses (`losses.jsonl` in this folder, every 25 steps):", "",
            "  | step | " + " | ".join(names) + " |", "  |---|" + "---|" * len(names),
            *[f"  | {rows[i]['step']} | " + " | ".join(f"{rows[i].get(n, float('nan')):.3f}" for n in names) + " |"
              for i in picks]]


def _metrics_lines(kind: str, metrics: dict[str, Any], rows: list[tuple[str, Any]], folder: Path) -> list[str]:
    where = folder_argument(folder)
    which = "" if where == f"micro-{kind}" else f" --{kind} {where}"
    return [
        f"Measured by `egokit zoo eval --json --seed {metrics.get('eval.seed', 0)} --only {kind}{which}`"
        f" (n = {metrics.get(f'eval.n_{kind}', '?')} items per metric, CPU, float32). Definitions: "
        f"`egokit/recipes/eval_{kind}.py`.",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| `{k}` | {_fmt(v)} |" for k, v in rows],
    ]


def _unmeasured_lines(kind: str, folder: Path) -> list[str]:
    return [f"Not measured yet for these weights (the card was written when they were trained). "
            f"`egokit zoo eval --only {kind} --{kind} {folder_argument(folder)} --write-cards` measures them and "
            "rewrites this card with the numbers."]


def _holdout_text(h: dict[str, Any] | None) -> str:
    if not h:
        return "none"
    parts = [f"colours {', '.join(h.get('colors', []))}" if h.get("colors") else "",
             f"shapes {', '.join(h.get('shapes', []))}" if h.get("shapes") else "",
             "combinations " + "; ".join(" ".join(c) for c in h.get("combos", [])) if h.get("combos") else ""]
    return ", ".join(p for p in parts if p)
