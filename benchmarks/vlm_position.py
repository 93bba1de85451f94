"""Where the micro VLM's position answers go wrong: accuracy against the object's distance to the 3×3 grid's lines.

    python benchmarks/vlm_position.py --model micro-vlm --scenes 800      # about a minute on two CPU cores

A position question (`where is the red circle ?`) is answered with the 3×3 cell of the object's centre
(`position_word`: "top left" … "center" … "bottom right"). The cell lines sit at a third and two thirds of the
image (21.3 and 42.7 px of 64), inside the 8-pixel patches 2 and 5 of the 8×8 grid the micro VLM reads, so an
object whose centre lies within a few pixels of a line is in one cell or the next by less than a patch. This
asks every position question of `--scenes` test scenes (greedy answers, as `egokit zoo eval`, whose scenes it includes), and prints
one JSON object: accuracy overall and by the centre's distance (px) to the nearest line it could be confused
across (the smaller of the horizontal and vertical distances), and how many wrong answers name an adjacent
cell (one row and/or one column off, diagonals included).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import egokit
from egokit.data.shapesworld import ShapesWorld
from egokit.recipes.eval_vlm import _batches, _features, generate_answers

BINS = ((0.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 99.0))
ROWS = {"top": 0, "bottom": 2}
COLS = {"left": 0, "right": 2}


def cell(word: str) -> tuple[int, int] | None:
    """(row, column) of a position word, None when the answer is not one."""
    parts = word.split()
    if word == "center":
        return 1, 1
    if not parts or any(p not in ROWS and p not in COLS for p in parts):
        return None
    row = next((ROWS[p] for p in parts if p in ROWS), 1)
    col = next((COLS[p] for p in parts if p in COLS), 1)
    return row, col


def line_distance(center: tuple[float, float], size: int) -> float:
    """Distance (px) from the centre to the nearest of the four cell lines."""
    lines = (size / 3, 2 * size / 3)
    return float(min(abs(c - v) for c in center for v in lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="micro-vlm")
    p.add_argument("--scenes", type=int, default=800)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    loaded = egokit.load(args.model, device="cpu")
    world = ShapesWorld(seed=0, split="test")
    start = int(np.random.default_rng([args.seed, 12]).integers(1 << 20))
    qa = [(s, q) for s in world.scenes(args.scenes, start) for q in s.questions if q.kind == "position"]
    rows = []
    for chunk in _batches(qa, 64):
        feats = _features(loaded, [s for s, _ in chunk])
        answers = generate_answers(loaded, [[feats[j], q.question] for j, (_, q) in enumerate(chunk)], max_new_tokens=6)
        for a, (s, q) in zip(answers, chunk):
            rows.append((a == q.answer, line_distance(s.objects[q.ref].center, world.size), cell(a), cell(q.answer)))
    right = np.array([r[0] for r in rows])
    dist = np.array([r[1] for r in rows])
    wrong = [r for r in rows if not r[0]]
    neighbour = [r for r in wrong if r[2] is not None and max(abs(r[2][0] - r[3][0]), abs(r[2][1] - r[3][1])) == 1]
    out = {"model": args.model, "questions": len(rows), "accuracy": round(float(right.mean()), 3),
           "by_line_distance_px": {f"{lo:g}-{hi:g}": {"n": int(((dist >= lo) & (dist < hi)).sum()),
                                                      "accuracy": round(float(right[(dist >= lo) & (dist < hi)].mean()), 3)}
                                   for lo, hi in BINS if ((dist >= lo) & (dist < hi)).any()},
           "wrong": len(wrong), "wrong_one_cell_off": len(neighbour),
           "wrong_within_4px_of_a_line": int(sum(r[1] < 4 for r in wrong))}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
