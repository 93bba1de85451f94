"""The `egokit` command line: assembles the commands that the modules of `egokit.commands` register.

Nothing here knows a method: each command module declares its sub-commands (`egokit.commands.registry`)
with the shared options (`egokit.commands.options`) and imports what it needs lazily, so `egokit --help`
is instant. Errors the kit raises on purpose (`EgokitError`) are printed as one line with a non-zero exit
code; an unexpected error is printed as one line too, with a hint to re-run with `--debug` for the traceback.
`--debug` is accepted before or after the sub-command. When the reader of the output goes away
(`egokit ... --json | head -1`), the command ends quietly with the status of a broken pipe (141).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from egokit.commands import discover
from egokit.commands.registry import add_commands
from egokit.errors import EgokitError

Handler = Callable[[argparse.Namespace], int | None]

#: the exit status of a command whose reader closed the pipe (128 + SIGPIPE, what a shell reports)
BROKEN_PIPE = 141
_DEBUG_HELP = "show full tracebacks on errors"


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="egokit",
        description="Look inside vision-language models: attention, gradients, and five research methods.",
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    discover()
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    for sub in _sub_parsers(parser):
        if "--debug" not in sub._option_string_actions:
            # SUPPRESS: absent after the sub-command, the root's value stands
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


def _sub_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below `parser` (sub-commands and their actions), each once."""
    found: dict[int, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if id(sub) not in found:
                    found[id(sub)] = sub
                    found.update((id(p), p) for p in _sub_parsers(sub))
    return list(found.values())


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in a message at interpreter exit
    except BrokenPipeError:
        _discard_stdout()
        return BROKEN_PIPE


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what is left does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (e.g. captured)
        pass


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        # `egokit` or `egokit data` with no action: show the relevant help.
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    debug = args.debug or os.environ.get("EGOKIT_DEBUG") == "1"
    try:
        code = func(args)
    except EgokitError as e:
        if debug:
            raise
        print(f"egokit: error: {str(e).strip()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("egokit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise  # the reader went away: `main` ends quietly
    except Exception as e:  # noqa: BLE001 - the CLI never shows a raw traceback
        if debug:
            raise
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        print(f"egokit: unexpected error ({type(e).__name__}: {first}); re-run with --debug for details",
              file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
