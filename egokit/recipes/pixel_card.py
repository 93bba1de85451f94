"""The model card (`README.md`) of a shipped point head, written from `training.json` and an eval run.

    python -m egokit.recipes.pixel_card egokit/zoo/micro-pixel eval.json [--trace trace-eval.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egokit.files import write_text_atomic
from egokit.recipes.cards import folder_argument

_BODY = """\
PixelLLM's point head (Xu et al., CVPR 2024) for the micro VLM (`egokit.load("{base}")`): a small MLP on the
language model's final per-token features regresses two points per token (a box's corners, fractions of
the image in [0, 1]). Load it with `egokit.pixel.load_head("{name}")` and use it with
`egokit.pixel.localize(model, head, image)` (a generated caption with a point and box per word) or
`egokit.pixel.refer(model, head, image, "the red circle")` (a box).

## What is in this folder
- `head.safetensors` (fp16): the head (`head.*`: an MLP of {depth} linear layers, hidden {hidden}, GELU{layer_text}
- `config.json`: widths, the tuned layers' indices, the base model's name and weight fingerprint
  ({fingerprint}; a head refuses another model), the recipe.
- `training.json`: the recipe, steps, wall time, device.

## Training
Loss (PixelLLM's): caption cross-entropy + {point_weight} × L1 between predicted and target corner points
in pixels of the model's view of the image, on the tokens that have a target. Trained: the head{trained_layer};
everything else frozen (vision tower, projector, embeddings, vocabulary projection). The shared VLM is
unchanged: the tuned layers are swapped in only while the head is used, so "with head" captions below are
the tuned layers' and "without head" the original model's.

Data: the train split of `ShapesWorld(seed={world_seed})`, generated on the fly.
- {caption_share:.0%} captions: `describe the image .` → the caption the micro VLM writes (objects left to
  right); word targets = {mode_text}. Caption tokens and the end-of-sequence token carry the cross-entropy.
- {refer_share:.0%} referring expressions, a task of their own: `where is the red circle ?` with the
  expression teacher-forced as the answer and ended by the end-of-sequence token; no cross-entropy; only
  the expression's last token targets the object's box, as its two corners (the official
  `point_output_ignore='^end-1'`).{answer_text}

Features: the final feature at each answer token's own position (it has read that token); the read-out
queries the image tokens as the language model receives them (see `egokit/methods/pixel/head.py` for why
the micro VLM needs it). Referring box: the two corners at the expression's last token (`refer_p50`,
PixelLLM's rule); `refer_p50_answer_position` reads them at the answer position instead (not the paper's
rule).
"""


def recipe_command(recipe: dict[str, Any]) -> str:
    """The command that reruns a recipe: its seed plus every option that differs from the default."""
    from egokit.methods.pixel.training import PixelRecipe

    default = PixelRecipe()
    parts = ["python -m egokit.recipes.train pixel", f"--seed {recipe['seed']}"]
    for key in ("steps", "batch", "mode", "base"):
        if recipe[key] != getattr(default, key):
            parts.append(f"--{key} {recipe[key]}")
    return " ".join(parts)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _rows(metrics: dict[str, Any]) -> list[str]:
    """Table rows of the numeric metrics; a dict of numbers gives one row per entry (`key.sub`)."""
    flat: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{sub}": x for sub, x in v.items()})
        else:
            flat[k] = v
    return [f"| `{k}` | {_fmt(v)} |" for k, v in flat.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"]


def write_card(folder: Path, metrics: dict[str, Any], extra: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write `folder/README.md` for the head in `folder` with the metrics of an eval run (and, optionally,
    other variants' metrics under their names)."""
    folder = Path(folder)
    training = json.loads((folder / "training.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    recipe = training["recipe"]
    tuned = config.get("tuned_layers") or []
    mode_text = ("ShapesWorld's boxes (a noun-phrase word: its object's box; a relation word: the union of "
                 "both objects' boxes; \"of\" and \".\": none)" if recipe["mode"] == "box" else
                 "the box of a simulated mouse-trace segment aligned to the word by relative position "
                 "(Localized Narratives)")
    body = _BODY.format(
        base=recipe["base"], name=folder.name, depth=config["depth"], hidden=config["hidden"],
        layer_text=(("; a visual read-out: " + f"{config['attn_heads']} attention heads of {config['attn_dim']} over the "
                     "image tokens the language model receives" if config.get("readout") else "")
                    + (f"); `layer.<i>.*`: tuned copies of the language model's decoder layers {tuned}"
                       if tuned else "); no tuned layer (the head reads the frozen model)")),
        fingerprint=config["meta"].get("base_fingerprint"), point_weight=recipe["point_weight"],
        trained_layer=(f" and copies of decoder layers {tuned}" if tuned
                       else " only (the cross-entropy has no effect)"),
        answer_text=("\n  Not the paper's rule: the answer position (the prompt's last token, where the model starts "
                     "its answer) targets the box too." if recipe.get("answer_position") else ""),
        world_seed=recipe["world_seed"], caption_share=1 - recipe["refer_share"], refer_share=recipe["refer_share"],
        mode_text=mode_text)
    recorded = training.get("command")  # written by `python -m egokit.recipes.train` since it records it
    command = f"{recorded} --steps {recipe['steps']}" if recorded else recipe_command(recipe)
    seed = metrics.get("seed", 0)
    lines = [
        f"# {folder.name}: a per-word point head for {recipe['base']}", "", body,
        "## Recipe", "",
        f"- command: `{command}` ({recipe['steps']} steps, batch {recipe['batch']}, AdamW, "
        f"lr {recipe['lr']} for the head and {recipe['layer_lr']} for the layers, warm-up {recipe['warmup']} "
        "steps then cosine decay)",
        f"- seed: {recipe['seed']}; ShapesWorld seed {recipe['world_seed']}",
        f"- steps: {training['steps']}; wall time: {training['wall_seconds'] / 60:.1f} min on {training['device']}"
        " (a shared machine: wall time depends on its load)",
        "",
        *_curve_lines(training.get("loss_curve")),
        "## Metrics on the held-out test split",
        "",
        *(_metrics_lines(metrics, seed) if _rows(metrics) else _unmeasured_lines(folder)),
        "",
    ]
    for name, other in (extra or {}).items():
        lines += [f"### {name}", "", "| metric | value |", "|---|---|",
                  *_rows(other),
                  ""]
    path = folder / "README.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def _curve_lines(curve: dict[str, Any] | None, points: int = 8) -> list[str]:
    """A few rows of the loss curve `training.json` holds (mean of each logged window; L1 in pixels)."""
    if not curve or not curve.get("rows"):
        return []
    rows = curve["rows"]
    keep = sorted({round(k * (len(rows) - 1) / (points - 1)) for k in range(points)}) if len(rows) > points else \
        list(range(len(rows)))
    columns = curve["columns"]
    lines = ["## Loss curve", "",
             "Means over each logged window (`loss_curve` in `training.json`); L1 in pixels of the model's view.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for k in keep:
        lines.append("| " + " | ".join("–" if v is None else _fmt(v) for v in rows[k]) + " |")
    return lines + [""]


def _metrics_lines(metrics: dict[str, Any], seed: int) -> list[str]:
    return [
        f"Measured by `egokit pixel eval --json --seed {seed} --n {metrics.get('n_scenes')}` ({metrics.get('n_scenes')} "
        f"test scenes, {metrics.get('n_object_words')} object words, {metrics.get('n_refer')} referring "
        "expressions; CPU, float32). Definitions: `egokit/methods/pixel/evaluation.py`.",
        "",
        "| metric | value |",
        "|---|---|",
        *_rows(metrics),
    ]


def _unmeasured_lines(folder: Path) -> list[str]:
    where = folder_argument(folder)
    return ["Not measured yet for this head (the card was written when it was trained). "
            f"`egokit pixel eval --json --head {where} > eval.json` measures it, and "
            f"`python -m egokit.recipes.pixel_card {folder} eval.json` rewrites this card with the numbers."]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m egokit.recipes.pixel_card", description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("metrics", help="JSON written by egokit pixel eval --json")
    p.add_argument("--extra", nargs=2, action="append", default=[], metavar=("NAME", "JSON"),
                   help="more metrics tables (e.g. another variant of the recipe)")
    args = p.parse_args(argv)
    extra = {name: json.loads(Path(f).read_text()) for name, f in args.extra}
    print(write_card(Path(args.folder), json.loads(Path(args.metrics).read_text()), extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
