"""Which continuation of micro-clip v2 stage 1 brings shape back? Variants at equal budget, on the validation split.

    python benchmarks/clip_v2_shape.py --init stages/micro-clip-v2      # 300 steps each, seed 0, 2 threads

Stage 1 of the v2 recipe binds relations and object order but classifies shapes poorly (zero-shot shape 0.39
on the test split). Each variant continues from the stage's weights (`ClipRecipe.init`: the dense heads and
the optimizer start fresh) for `--steps` steps of recipe v2 at peak rate `--lr`, into a temporary folder
(`--work` to keep it), and is measured with `evaluate_clip` on the validation split (n = 300, seed 0) — the
starting weights too, as `init`. Prints one JSON object: per variant its settings, wall seconds and every
`clip.*` metric. About 9 minutes per variant on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import egokit
from egokit.recipes.clip import ClipRecipe, train_clip
from egokit.recipes.eval_clip import evaluate_clip

#: variant → recipe fields changed from v2
VARIANTS = {
    "v2": {},
    "shape_prompt_x3": {"prompt_weights": {"color": 1.0, "shape": 3.0, "pattern": 1.0}},
    "shape_prompt_x3_shape_foils": {"prompt_weights": {"color": 1.0, "shape": 3.0, "pattern": 1.0},
                                    "first_negatives": ("relation", "order", "shape")},
    "shape_prompt_x3_dense_shape_x3": {"prompt_weights": {"color": 1.0, "shape": 3.0, "pattern": 1.0},
                                       "dense_target_weights": {"shape": 3.0}},
}


def measure(folder: Path) -> dict[str, float]:
    lm = egokit.load(folder, device="cpu")
    return {k: round(v, 4) for k, v in evaluate_clip(lm.model, lm.processor, seed=0, n=300, split="val").items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--init", required=True, help="the stage-1 checkpoint folder the variants continue")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", default=None, choices=sorted(VARIANTS), help="variants to run")
    p.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="egokit-clip-shape-"))
    out = {"settings": {"init": args.init, "steps": args.steps, "warmup": args.warmup, "lr": args.lr,
                        "split": "val"}, "init": measure(Path(args.init))}
    for name in args.only or VARIANTS:
        recipe = ClipRecipe.v2(0)
        recipe.steps, recipe.warmup, recipe.lr, recipe.precision, recipe.init = (
            args.steps, args.warmup, args.lr, "bf16", args.init)
        for k, v in VARIANTS[name].items():
            setattr(recipe, k, v)
        folder = work / name
        t0 = time.perf_counter()
        train_clip(recipe, folder / "model", folder / "run", device="cpu", resume=False)
        out[name] = {"changes": {k: list(v) if isinstance(v, tuple) else v for k, v in VARIANTS[name].items()},
                     "seconds": round(time.perf_counter() - t0, 1), **measure(folder / "model")}
        print(json.dumps({name: out[name]}), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
