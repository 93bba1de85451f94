"""Where commands register: each module of `egokit.commands` adds its sub-commands with `@command`.

    @command("ego", "Ego: personal concepts as a few attention-selected visual tokens", actions=True, order=20)
    def ego_commands(actions):                 # actions: the sub-parsers of `egokit ego`
        p = actions.add_parser("eval", help="...")
        options.model(p, "micro-vlm", "a VLM")
        p.set_defaults(func=run_eval)

A command without actions (`egokit explore IMAGE PROMPT`) gets its own parser instead. `egokit.cli`
imports every module of the package (`egokit.commands.discover`) and adds the registered commands in
`order`; nothing else lists them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

AddArguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """A registered top-level command: its name, one-line help, where its arguments come from, and its
    place in `egokit --help`. With `actions`, `add` receives the command's sub-parsers (one per action)."""

    name: str
    help: str
    add: Callable[[argparse.Action | argparse.ArgumentParser], None]
    actions: bool = False
    order: int = 100


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, *, actions: bool = False,
            order: int = 100) -> Callable[[Callable], Callable]:
    """Decorator: register `egokit NAME`; registering a name again replaces the earlier command."""

    def decorate(add: Callable) -> Callable:
        COMMANDS[name] = Command(name=name, help=help, add=add, actions=actions, order=order)
        return add

    return decorate


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add every registered command to the root parser's sub-parsers, in `order`."""
    for cmd in sorted(COMMANDS.values(), key=lambda c: (c.order, c.name)):
        parser = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.actions:
            cmd.add(parser.add_subparsers(dest=f"{cmd.name}_action", metavar="ACTION"))
        else:
            cmd.add(parser)


__all__ = ["COMMANDS", "Command", "add_commands", "command"]
