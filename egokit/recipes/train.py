"""Train a micro-zoo model: `python -m egokit.recipes.train clip|vlm [options]`.

    python -m egokit.recipes.train clip                 # the micro CLIP's recipe → runs/micro-clip/model
    python -m egokit.recipes.train vlm                  # the micro VLM's (on the shipped micro CLIP's tower)
    python -m egokit.recipes.train pixel                # PixelLLM's point head on the micro VLM
    python -m egokit.recipes.train clip --quick --out /tmp/clip   # seconds: a tiny model, for tests

The trained model goes to `--out`, by default `<run-dir>/model` (`runs/<name>/model`): never into the
package unless `--out` says so, and never over a shipped checkpoint (`egokit/zoo/micro-*`) without
`--overwrite-shipped` as well (a `--quick` model never replaces one). The folder gets the model card
(`README.md`) of the model written, replacing any card there; its metrics are measured separately (the card
says how: `egokit zoo eval --write-cards`, or `egokit.recipes.pixel_card` for a point head).

Runs are deterministic given `--seed` (same data stream, same initialisation; bit-identical on the same
device and thread count). Progress goes to a tqdm bar; a resumable state is saved in `--run-dir` every
few minutes, and `--resume` (the default) continues a killed run from there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from egokit.argtypes import count, positive_number, seed_number, thread_count
from egokit.errors import EgokitError, InputError
from egokit.zoo import ZOO_DIR

NAMES = {"clip": "micro-clip", "micro-clip": "micro-clip", "vlm": "micro-vlm", "micro-vlm": "micro-vlm"}
NAMES.update({"pixel": "micro-pixel", "micro-pixel": "micro-pixel"})  # PixelLLM's point head on the micro VLM


def prompt_weights(text: str) -> dict[str, float]:
    """`--prompt-weights 1,3,1`: the colour, shape and pattern weights of the micro CLIP's prompt loss."""
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) != 3 or any(not v >= 0 for v in values) or not sum(values) > 0:
        raise argparse.ArgumentTypeError(f"give three weights ≥ 0 (colour,shape,pattern), e.g. 1,3,1 — not {text!r}")
    return dict(zip(("color", "shape", "pattern"), values))


def mixture_settings(text: str) -> dict[str, float]:
    """`--mixture hard_weight=2,incontext.personal=0.4`: fields of the micro VLM's `MixtureConfig` (a task's
    weight as `<group>.<task>`), each a number ≥ 0."""
    out: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not key.strip() or not 0 <= number < float("inf"):
            raise argparse.ArgumentTypeError(f"give KEY=NUMBER pairs, e.g. hard_weight=2,incontext.personal=0.4 "
                                             f"— not {part!r}")
        out[key.strip()] = number
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m egokit.recipes.train", description=__doc__.splitlines()[0])
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The recipe options (shared with `egokit zoo train`)."""
    p.add_argument("model", choices=sorted(NAMES), help="which micro model to train")
    p.add_argument("--steps", type=count(), default=None, help="optimizer steps (default: the recipe's)")
    p.add_argument("--batch", type=count(), default=None, help="batch size (default: the recipe's)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--quick", action="store_true", help="a tiny model for a few steps (seconds)")
    p.add_argument("--seed", type=seed_number, default=0, help="random seed")
    p.add_argument("--out", default=None, help="folder for the trained model (default: <run-dir>/model)")
    p.add_argument("--overwrite-shipped", action="store_true",
                   help="let --out replace a shipped checkpoint of the package (egokit/zoo/micro-*)")
    p.add_argument("--run-dir", default=None, help="folder for the resumable state (default: runs/<name>)")
    p.add_argument("--threads", type=thread_count, default=2,
                   help="CPU threads (1 is faster on a busy shared machine; 0: torch's default)")
    p.add_argument("--clip", default=None, help="micro CLIP folder whose vision tower the VLM uses")
    p.add_argument("--resume", dest="resume", action="store_true", default=True,
                   help="continue from the run folder's state when it matches the recipe (default)")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="start from scratch")
    p.add_argument("--foil-steps", type=count(0), default=None,
                   help="clip: steps of stage two, the text tower tuned on foils (default: the recipe's, 0)")
    p.add_argument("--foil-lr", type=positive_number, default=None, help="clip: peak learning rate of stage two")
    p.add_argument("--foil-vision-from", type=count(0), default=None,
                   help="clip: stage two also tunes the vision layers from this index on (default: none)")
    p.add_argument("--recipe", default=None, choices=["v1", "v2"],
                   help="clip, vlm: v1 (zoo v1's recipe, default) or v2 (clip: hard negatives of every foil kind "
                        "and dense targets of size and place from the first step; vlm: the second mixture in bf16)")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"],
                   help="clip, vlm: the forward pass in float32 or under bfloat16 autocast (default: the recipe's)")
    p.add_argument("--max-minutes", type=positive_number, default=None,
                   help="clip, vlm: stop after this much wall time, saving the state (the same command goes on)")
    p.add_argument("--init", default=None,
                   help="clip, vlm: a checkpoint folder of the same model whose weights start the run (a later "
                        "stage); the vlm takes its projector and language model, the tower still from --clip")
    p.add_argument("--vision-from", type=count(0), default=None,
                   help="clip: keep the vision embeddings and layers below this index as initialised (with --init 2: "
                        "the tokens the micro VLM reads stay the same)")
    p.add_argument("--prompt-weights", default=None, type=prompt_weights,
                   help="clip: weights of the colour, shape and pattern parts of the prompt loss, e.g. 1,3,1")
    p.add_argument("--mixture", default=None, type=mixture_settings,
                   help="vlm: change fields of the training mixture, e.g. hard_weight=2,object_memory=0.2,"
                        "incontext.personal=0.4")
    p.add_argument("--lr", type=positive_number, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--warmup", type=count(0), default=None, help="warm-up steps (default: the recipe's)")
    p.add_argument("--mode", default=None, choices=["box", "trace"], help="pixel: word targets (default: box)")
    p.add_argument("--base", default=None, help="pixel: the VLM the point head reads (default: micro-vlm)")


def run(args: argparse.Namespace) -> Path:
    """Train what `args` asks for; returns the folder written."""
    import torch

    from egokit.models.loading import resolve_device

    name = NAMES[args.model]
    clip_only = ("foil_steps", "foil_lr", "foil_vision_from", "vision_from", "prompt_weights")
    if name != "micro-clip" and any(getattr(args, k, None) is not None for k in clip_only):
        raise InputError(", ".join("--" + k.replace("_", "-") for k in clip_only)
                         + " are settings of the micro CLIP only")
    not_pixel = ("recipe", "precision", "max_minutes", "init")
    if name == "micro-pixel" and any(getattr(args, k, None) is not None for k in not_pixel):
        raise InputError(", ".join("--" + k.replace("_", "-") for k in not_pixel)
                         + " are settings of the micro CLIP and the micro VLM")
    if name != "micro-vlm" and getattr(args, "mixture", None) is not None:
        raise InputError("--mixture is a setting of the micro VLM only")
    resolve_device(args.device)  # a device that is not there fails before any work
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / (name + ("-quick" if args.quick else ""))
    out = Path(args.out) if args.out else run_dir / "model"
    check_out(out, overwrite_shipped=bool(getattr(args, "overwrite_shipped", False)), quick=bool(args.quick))
    if args.threads:
        torch.set_num_threads(args.threads)
    written = _train(name, args, out, run_dir)
    write_card(written, name, recipe_command(args))
    return written


def _train(name: str, args: argparse.Namespace, out: Path, run_dir: Path) -> Path:
    from egokit.training import override_recipe

    if name == "micro-pixel":
        from egokit.methods.pixel.training import run_from_args

        return run_from_args(args, out, run_dir)
    if name == "micro-clip":
        from egokit.recipes.clip import ClipRecipe, train_clip

        recipe = ClipRecipe.v2(args.seed) if getattr(args, "recipe", None) == "v2" else ClipRecipe(seed=args.seed)
        if args.quick:
            quick = ClipRecipe.quick(args.seed)
            for k in ("steps", "batch", "width", "layers", "heads", "dense_layers", "warmup"):
                setattr(recipe, k, getattr(quick, k))
        override_recipe(recipe, args)
        if args.vision_from is not None:
            recipe.vision_from = int(args.vision_from)
        if args.prompt_weights is not None:
            recipe.prompt_weights = dict(args.prompt_weights)
        if args.foil_steps is not None:
            recipe.foil_steps = int(args.foil_steps)
        if args.foil_lr is not None:
            recipe.foil_lr = float(args.foil_lr)
        if args.foil_vision_from is not None:
            if not recipe.foil_steps:
                raise InputError("--foil-vision-from is a setting of stage two: give --foil-steps N as well")
            recipe.foil_vision_from = int(args.foil_vision_from)
        return train_clip(recipe, out, run_dir, device=args.device, resume=args.resume,
                          max_seconds=_max_seconds(args))
    from egokit.recipes.vlm import VlmRecipe, train_vlm

    recipe = VlmRecipe.v2(args.seed) if getattr(args, "recipe", None) == "v2" else VlmRecipe(seed=args.seed)
    if args.quick:
        quick = VlmRecipe.quick(args.seed)
        for k in ("steps", "batch", "width", "layers", "heads", "intermediate", "warmup", "vision_feature_layer"):
            setattr(recipe, k, getattr(quick, k))
    override_recipe(recipe, args)
    if getattr(args, "mixture", None):
        recipe.change_mixture(args.mixture)
    clip = Path(args.clip) if args.clip else None
    return train_vlm(recipe, out, run_dir, clip_dir=clip, device=args.device, resume=args.resume,
                     quick=args.quick, max_seconds=_max_seconds(args))


def _max_seconds(args: argparse.Namespace) -> float | None:
    minutes = getattr(args, "max_minutes", None)
    return None if minutes is None else 60.0 * float(minutes)


def recipe_command(args: argparse.Namespace) -> str:
    """The command that repeats this training, less `--steps` (the card adds the steps of each schedule) and
    the options that do not change the weights (`--out`, `--run-dir`, `--device`, `--threads`, `--resume`)."""
    parts = ["python -m egokit.recipes.train", NAMES[args.model].removeprefix("micro-"), f"--seed {args.seed}"]
    if args.quick:
        parts.append("--quick")
    for flag in ("recipe", "precision", "batch", "lr", "warmup", "init", "vision_from", "prompt_weights", "clip",
                 "foil_steps", "foil_lr", "foil_vision_from", "mode", "base", "mixture"):
        value = getattr(args, flag, None)
        if flag == "mixture" and value:
            value = ",".join(f"{k}={v:g}" for k, v in value.items())
        elif isinstance(value, dict):
            value = ",".join(f"{v:g}" for v in value.values())
        if value is not None:
            parts.append(f"--{flag.replace('_', '-')} {value}")
    return " ".join(parts)


def write_card(folder: Path, name: str, command: str) -> Path:
    """Record `command` in the folder's `training.json` and write the model card (`README.md`) of the model
    just trained, replacing any card already there (e.g. a shipped checkpoint's, retrained with
    `--overwrite-shipped`): its recipe and training run, and how to measure its metrics."""
    import json

    from egokit.files import write_text_atomic
    from egokit.recipes import cards, pixel_card

    training_file = folder / "training.json"
    training = json.loads(training_file.read_text())
    training["command"] = command
    write_text_atomic(training_file, json.dumps(training, indent=2, sort_keys=True) + "\n")
    if name == "micro-pixel":
        return pixel_card.write_card(folder, {})
    return cards.write_card(folder, name.removeprefix("micro-"), {})


def shipped_checkpoints() -> list[Path]:
    """The checkpoint folders shipped in the package (`egokit/zoo/micro-*` that hold files)."""
    if not ZOO_DIR.is_dir():
        return []
    return sorted(d.resolve() for d in ZOO_DIR.iterdir() if d.is_dir() and any(d.iterdir()))


def check_out(out: Path, overwrite_shipped: bool = False, quick: bool = False) -> None:
    """Refuse an `--out` that would write over a shipped checkpoint, unless `overwrite_shipped` says so
    (and never for a `--quick` model, which is a test model)."""
    target = out.expanduser().resolve()
    hit = next((d for d in shipped_checkpoints() if target == d or d in target.parents), None)
    if hit is None:
        return
    if quick:
        raise InputError(f"--out {out} is the shipped checkpoint {hit.name} ({hit}): a --quick model never "
                         "replaces it; pass --out to a folder of your own (e.g. --out runs/quick-model)")
    if not overwrite_shipped:
        raise InputError(f"--out {out} would overwrite the shipped checkpoint {hit.name} ({hit}): pass "
                         "--out to a folder of your own, or add --overwrite-shipped to replace it on purpose")


def main(argv: Sequence[str] | None = None) -> int:
    from egokit.training import TimeLimitReached

    args = build_parser().parse_args(argv)
    try:
        out = run(args)
    except TimeLimitReached as e:
        print(f"egokit.recipes.train: {e}", flush=True)
        return 3
    except EgokitError as e:
        print(f"egokit.recipes.train: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
