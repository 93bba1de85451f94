"""`egokit zoo eval|train`: evaluate and train the shipped micro models (their recipes)."""

from __future__ import annotations

import argparse

from egokit.commands import options
from egokit.commands.registry import command


@command("zoo", "the micro zoo: train and evaluate the shipped micro models", actions=True, order=70)
def zoo_commands(actions: argparse._SubParsersAction) -> None:
    from egokit.recipes.eval import add_arguments as eval_arguments
    from egokit.recipes.train import add_arguments as train_arguments

    q = actions.add_parser("eval", help="metrics of micro-clip and micro-vlm on the ShapesWorld test split")
    eval_arguments(q)
    q.set_defaults(func=_eval)
    q = actions.add_parser("train", help="train a micro model (same as python -m egokit.recipes.train)")
    train_arguments(q)
    q.set_defaults(func=_train)


def _eval(args: argparse.Namespace) -> int:
    from egokit.recipes.eval import run

    metrics = run(args)
    if args.json:
        options.emit_json(metrics)
    else:
        options.print_metrics(dict(sorted(metrics.items())), width=40)
    return 0


def _train(args: argparse.Namespace) -> int:
    from egokit.recipes.train import run
    from egokit.training import TimeLimitReached

    try:
        print(f"egokit zoo train: wrote {run(args)}")
    except TimeLimitReached as e:  # not a mistake: the state is saved, the same command goes on
        print(f"egokit zoo train: {e}")
        return 3
    return 0
