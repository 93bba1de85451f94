"""Evaluate the micro zoo on ShapesWorld's held-out test split: `egokit zoo eval --json`.

    python -m egokit.recipes.eval --json                   # both shipped models, seed 0
    python -m egokit.recipes.eval --only clip --n 200
    python -m egokit.recipes.eval --write-cards            # also rewrite each folder's README.md

Deterministic given `--seed` (it picks the test items) and `--n` (how many per metric). Metric
definitions: `egokit.recipes.eval_clip` and `egokit.recipes.eval_vlm`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egokit.argtypes import count, seed_number
from egokit.zoo import ZOO_DIR

DEFAULT_N = {"clip": 300, "vlm": 240}
#: the fewest items per metric that leave every metric at least one item (some use a quarter of them)
MIN_N = 4


def evaluate(seed: int = 0, n: int | None = None, only: str | None = None, clip: str = "micro-clip",
             vlm: str = "micro-vlm", device: str = "cpu", threads: int | None = 2) -> dict[str, Any]:
    """Metrics of the micro CLIP and/or micro VLM as one flat dict (`clip.*`, `vlm.*`, `eval.*`)."""
    import torch
    from tqdm.auto import tqdm

    import egokit
    from egokit.recipes.eval_clip import evaluate_clip
    from egokit.recipes.eval_vlm import evaluate_vlm

    if threads and device == "cpu":
        torch.set_num_threads(threads)
    out: dict[str, Any] = {"eval.seed": seed}
    t0 = time.monotonic()
    with tqdm(desc="egokit zoo eval", unit="item", mininterval=2.0) as bar:
        if only in (None, "clip"):
            lm = egokit.load(clip, device=device)
            k = n or DEFAULT_N["clip"]
            out.update(evaluate_clip(lm.model.eval(), lm.processor, seed=seed, n=k, progress=bar.update))
            out["eval.n_clip"] = k
        if only in (None, "vlm"):
            lm = egokit.load(vlm, device=device)
            k = n or DEFAULT_N["vlm"]
            out.update(evaluate_vlm(lm.model.eval(), lm.processor, seed=seed, n=k, progress=bar.update))
            out["eval.n_vlm"] = k
    out["eval.seconds"] = round(time.monotonic() - t0, 1)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m egokit.recipes.eval", description=__doc__.splitlines()[0])
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared with `egokit zoo eval`."""
    p.add_argument("--seed", type=seed_number, default=0, help="picks the test items (default 0)")
    p.add_argument("--n", type=count(MIN_N), default=None,
                   help=f"items per metric, at least {MIN_N} (default: 300 CLIP, 240 VLM)")
    p.add_argument("--only", choices=("clip", "vlm"), default=None, help="evaluate one model only")
    p.add_argument("--clip", default="micro-clip", help="micro CLIP name or folder")
    p.add_argument("--vlm", default="micro-vlm", help="micro VLM name or folder")
    p.add_argument("--device", default="cpu", help="cpu (default, reproduces the model cards), cuda or auto")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--write-cards", action="store_true", help="rewrite the evaluated folders' README.md")


def run(args: argparse.Namespace) -> dict[str, Any]:
    metrics = evaluate(seed=args.seed, n=args.n, only=args.only, clip=args.clip, vlm=args.vlm, device=args.device)
    if args.write_cards:
        from egokit.recipes.cards import write_card

        for kind, name in (("clip", args.clip), ("vlm", args.vlm)):
            if args.only in (None, kind):
                folder = ZOO_DIR / name if not Path(name).exists() else Path(name)
                write_card(folder, kind, metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    metrics = run(args)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        for k, v in sorted(metrics.items()):
            print(f"{k:>40}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
