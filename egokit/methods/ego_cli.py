"""What `egokit ego ...` runs: eval, remember, ask (the parser lines live in `egokit.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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
    from egokit.methods.ego_eval import evaluate

    model = load(args.model, device=args.device)
    return evaluate(model, seed=args.seed, n_concepts=args.concepts, budget=args.budget,
                    threads=args.threads or None)


def _bank(path: Path, model: Any) -> Any:
    from egokit.methods.ego_memory import MemoryBank

    if path.exists():
        return MemoryBank.load(path, model=model)
    return MemoryBank(fingerprint=model.fingerprint(), model_name=model.name)


def run_remember(args: argparse.Namespace) -> dict[str, Any]:
    from egokit import load
    from egokit.methods.ego import remember

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
    from egokit.methods.ego import ask
    from egokit.methods.ego_memory import MemoryBank

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


__all__ = ["budget_arg", "run_ask", "run_eval", "run_remember", "summary_lines"]
