"""Choose LoRSU's (and its baselines') learning rates on the development seeds, never the evaluation ones.

`python benchmarks/lorsu_lr.py --methods lorsu --lrs 1e-4 3e-4 1e-3 3e-3 --seeds 0 4` runs the continual
protocol (`egokit.methods.lorsu.evaluate`, full settings) once per method, rate and seed, and prints JSON: TI,
CC and TI + CC of every run, the mean TI + CC per rate over the seeds, and each method's chosen rate (the
best mean). The evaluation seeds (1, 2, 3: `egokit lorsu eval --seed S`) are refused, so a choice made here
cannot have seen them. One thread: the micro models run fastest on one. `--option loss=pairs` (repeatable)
passes a setting to every chosen method's update function (`Settings.method_options`), to measure a variant
such as the official code's pairwise loss or its AdamW weight decay (`--option weight_decay=0.01`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

EVAL_SEEDS = (1, 2, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["lorsu"])
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-4, 3e-4, 1e-3, 3e-3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 4])
    parser.add_argument("--model", default="micro-clip")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the methods' update functions (numbers are read as numbers)")
    args = parser.parse_args(argv)
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--option needs KEY=VALUE, got {item!r}")
        try:
            options[key] = float(value)
        except ValueError:
            options[key] = value
    if set(args.seeds) & set(EVAL_SEEDS):
        parser.error(f"seeds {sorted(set(args.seeds) & set(EVAL_SEEDS))} are evaluation seeds: choose on others")

    import torch

    from egokit import load
    from egokit.methods.lorsu import Settings, evaluate

    torch.set_num_threads(1)
    model = load(args.model, device="cpu")
    runs, t0 = [], time.perf_counter()
    for method in args.methods:
        for lr in args.lrs:
            for seed in args.seeds:
                settings = Settings(seed=seed)
                settings.lr[method] = lr
                settings.method_options[method] = dict(options)
                result = evaluate(model, methods=(method,), settings=settings, progress=False)
                m = result.method_metrics(method)
                runs.append({"method": method, "lr": lr, "seed": seed, "ti": round(m["ti"], 4),
                             "cc": round(m["cc"], 4), "ti_plus_cc": round(m["ti"] + m["cc"], 4)})
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    means: dict[str, dict[str, float]] = {}
    for r in runs:
        means.setdefault(r["method"], {}).setdefault(str(r["lr"]), [])  # type: ignore[arg-type]
        means[r["method"]][str(r["lr"])].append(r["ti_plus_cc"])  # type: ignore[attr-defined]
    mean_score = {m: {lr: round(statistics.mean(v), 4) for lr, v in per.items()} for m, per in means.items()}
    chosen = {m: float(max(per, key=per.get)) for m, per in mean_score.items()}  # type: ignore[arg-type]
    print(json.dumps({"seeds": args.seeds, "options": options, "runs": runs, "mean_ti_plus_cc": mean_score, "chosen_lr": chosen,
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
