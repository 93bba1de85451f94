"""Does bfloat16 autocast keep the micro CLIP's metrics? Both precisions at equal budget, then the card metrics.

    python benchmarks/train_precision.py            # recipe v2, 200 steps (warm-up 20), seed 0, 2 threads

Trains the v2 recipe twice from the same seed on the same data stream, once in float32 and once under bfloat16
autocast, into a temporary folder (`--work` to keep it), and measures each with `evaluate_clip` (the test
split, n = 300, seed 0: the numbers a card shows). Prints one JSON object: per precision the wall seconds
(data generation included) and every `clip.*` metric. Takes about 12 minutes on two CPU cores.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default=None, help="folder for the two runs (default: a temporary one)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="egokit-precision-"))
    out = {}
    for precision in ("fp32", "bf16"):
        recipe = ClipRecipe.v2(0)
        recipe.steps, recipe.warmup, recipe.precision = args.steps, args.warmup, precision
        folder = work / f"prec_{precision}"
        t0 = time.perf_counter()
        train_clip(recipe, folder / "model", folder / "run", device="cpu", resume=False)
        seconds = time.perf_counter() - t0
        lm = egokit.load(folder / "model", device="cpu")
        metrics = evaluate_clip(lm.model, lm.processor, seed=0, n=300)
        out[precision] = {"seconds": round(seconds, 1), **{k: round(v, 4) for k, v in metrics.items()}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
