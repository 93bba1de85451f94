"""The `egokit` command line: assembles the commands that the modules of `egokit.commands` register.

Nothing here knows a method: each command module declares its sub-commands (`egokit.commands.registry`)
with the shared options (`egokit.commands.options`) and imports what it needs lazily, so `egokit --help`
is instant. Errors the kit raises on purpose (`EgokitError`) are printed as one line with a non-zero exit
code; an unexpected error is printed as one line too, with a hint to re-run with `--debug` for the traceback.
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


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="egokit",
        description="Look inside vision-language models: attention, gradients, and five research methods.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    discover()
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
        print(f"egokit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("egokit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI never shows a raw traceback
        if debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"egokit: unexpected error ({type(e).__name__}: {first}); re-run with --debug for details",
              file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
