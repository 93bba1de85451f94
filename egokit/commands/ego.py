"""`egokit ego eval|remember|ask`: Ego's personal concepts from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from egokit.commands import options
from egokit.commands.registry import command


def budget_arg(text: str) -> int | float:
    """A budget on the command line: "13" is a token count, "0.2" a share of the tokens."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"budget must be a count (13) or a share (0.2), got {text!r}") from None


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    from egokit import load
    from egokit.methods.ego.evaluation import evaluate

    model = load(args.model, device=args.device)
    return evaluate(model, seed=args.seed, n_concepts=args.concepts, budget=args.budget,
                    threads=args.threads or None)


def _bank(path: Path, model: Any) -> Any:
    from egokit.methods.ego.memory import MemoryBank

    if path.exists():
        return MemoryBank.load(path, model=model)
    return MemoryBank(fingerprint=model.fingerprint(), model_name=model.name)


def run_remember(args: argparse.Namespace) -> dict[str, Any]:
    from egokit import load
    from egokit.methods.ego.personalize import remember

    model = load(args.model, device=args.device)
    bank_path = Path(args.bank).expanduser()
    bank = _bank(bank_path, model)
    memory = remember(model, list(args.images), args.name, budget=args.budget, selection=args.selection,
                      keywords=args.keywords.split() if args.keywords else None, dynamic_budget=args.dynamic)
    bank.add(memory)
    bank.save(bank_path)
    if args.out:
        memory.to_image().save(args.out)
    return {"bank": str(bank_path), "concepts": bank.names, "memory": memory.to_dict()}


def run_ask(args: argparse.Namespace) -> dict[str, Any]:
    from egokit import load
    from egokit.errors import InputError
    from egokit.methods.ego.memory import MemoryBank
    from egokit.methods.ego.personalize import ask

    model = load(args.model, device=args.device)
    bank_path = Path(args.bank).expanduser()
    if not bank_path.exists():
        raise InputError(f"no memory bank at {bank_path}: create one with `egokit ego remember IMAGE NAME --bank FILE`")
    bank = MemoryBank.load(bank_path, model=model)
    frames = list(args.images)
    answer = ask(model, bank, frames if len(frames) > 1 else frames[0], args.question,
                 max_new_tokens=args.max_new_tokens)
    return answer.to_dict()


def summary_lines(result: dict[str, Any]) -> list[str]:
    """Plain-text output of `egokit ego eval` (without --json)."""
    lines = []
    for key, value in result.items():
        if key in ("caption_examples", "per_kind"):
            continue
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items())
            lines.append(f"{key:>32}: {inner}")
        else:
            lines.append(f"{key:>32}: {value}")
    return lines



@command("ego", "Ego: personal concepts as a few attention-selected visual tokens", actions=True, order=10)
def ego_commands(actions: argparse._SubParsersAction) -> None:
    q = actions.add_parser("eval", help="Ego vs its baselines on held-out ShapesWorld concepts (F1, precision, size, speed)")
    options.model(q, "micro-vlm", "a VLM")
    options.device(q)
    options.seed(q, help="which held-out concepts, names and query scenes")
    q.add_argument("--concepts", type=int, default=16, help="held-out concepts to evaluate")
    q.add_argument("--budget", type=budget_arg, default=0.2, help="tokens kept per view: a share (0.2) or a count (13)")
    options.threads(q)
    options.json_flag(q)
    q.set_defaults(func=_eval)
    q = actions.add_parser("remember", help="add a concept (from reference images) to a memory bank file")
    q.add_argument("images", nargs="+", help="reference image file(s) of the concept")
    q.add_argument("name", help="the concept's name (one word)")
    q.add_argument("--bank", required=True, help="memory bank file (created if missing)")
    options.model(q, "micro-vlm", "a VLM")
    options.device(q)
    q.add_argument("--budget", type=budget_arg, default=0.2, help="tokens kept per view: a share or a count")
    q.add_argument("--selection", default="ego", choices=["ego", "uniform", "random", "all", "keywords"])
    q.add_argument("--keywords", default=None, help="use these words instead of the model's description (quote them)")
    q.add_argument("--dynamic", action="store_true", help="budget from the model's coverage answer (capped)")
    q.add_argument("--out", default=None, help="write a PNG of the kept tokens on each view")
    options.json_flag(q)
    q.set_defaults(func=_remember)
    q = actions.add_parser("ask", help="ask about an image (or frames) with a memory bank's concepts in context")
    q.add_argument("images", nargs="+", help="image file, or several video frames")
    q.add_argument("question", help="the question (quote it)")
    q.add_argument("--bank", required=True, help="memory bank file written by `egokit ego remember`")
    options.model(q, "micro-vlm", "a VLM")
    options.device(q)
    q.add_argument("--max-new-tokens", type=int, default=24)
    options.json_flag(q)
    q.set_defaults(func=_ask)


def _eval(args: argparse.Namespace) -> int:
    metrics = run_eval(args)
    if args.json:
        options.emit_json(metrics)
    else:
        print("\n".join(summary_lines(metrics)))
    return 0


def _remember(args: argparse.Namespace) -> int:
    out = run_remember(args)
    if args.json:
        options.emit_json(out)
    else:
        m = out["memory"]
        print(f"remembered {m['name']!r}: {m['tokens']} tokens ({m['bytes']} bytes), keywords: "
              f"{' '.join(m['keywords'])}; bank {out['bank']} holds {', '.join(out['concepts'])}")
    return 0


def _ask(args: argparse.Namespace) -> int:
    out = run_ask(args)
    if args.json:
        options.emit_json(out)
    else:
        print(out["text"])
    return 0


__all__ = ["budget_arg", "run_ask", "run_eval", "run_remember", "summary_lines"]
