"""Seconds per training step of the micro CLIP's recipes in float32 and under bfloat16 autocast (JSON).

    python benchmarks/train_speed.py                       # recipe v2, batch 96, 2 threads, 6 timed rounds
    python benchmarks/train_speed.py --recipe v1 --rounds 10

Each round times one step of every variant (fp32, bf16) on the same batch, in an order that alternates from
round to round, after two warm-up rounds; data generation is outside the timed part. The ratio is the median
of the per-round bf16 / fp32 ratios (a shared machine drifts: per-round ratios cancel that). Whether bf16
keeps the metrics is a separate question: train both and compare their cards (`egokit zoo eval`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from egokit.recipes.clip import ClipData, ClipRecipe, train_step, training_parts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", choices=["v1", "v2"], default="v2")
    p.add_argument("--batch", type=int, default=96)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    runs = {}
    for precision in ("fp32", "bf16"):
        recipe = ClipRecipe.v2() if args.recipe == "v2" else ClipRecipe()
        recipe.batch, recipe.precision = args.batch, precision
        torch.manual_seed(0)
        model, processor, heads, params, opt = training_parts(recipe, dev)
        runs[precision] = (model, heads, params, opt, recipe)
    data = ClipData(runs["fp32"][4])
    tok = processor.tokenizer
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(2 + args.rounds):
        batch = data.batch(r, tok, dev)
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for precision in order:
            model, heads, params, opt, recipe = runs[precision]
            t0 = time.perf_counter()
            train_step(model, heads, params, opt, batch, recipe, dev)
            if r >= 2:
                times[precision].append(time.perf_counter() - t0)
    ratios = [b / f for f, b in zip(times["fp32"], times["bf16"])]
    print(json.dumps({
        "recipe": args.recipe, "batch": args.batch, "threads": args.threads, "rounds": args.rounds,
        "seconds_per_step_median": {k: round(statistics.median(v), 4) for k, v in times.items()},
        "bf16_over_fp32_median_ratio": round(statistics.median(ratios), 4),
        "ratios": [round(x, 3) for x in ratios],
    }, indent=2))


if __name__ == "__main__":
    main()
