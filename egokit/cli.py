"""The `egokit` command line: assembles the commands that the modules of `egokit.commands` register.

Nothing here knows a method: each command module declares its sub-commands (`egokit.commands.registry`)
with the shared options (`egokit.commands.options`) and imports what it needs lazily, so `egokit --help`
is instant. Errors the kit raises on purpose (`EgokitError`) are printed as one line with a non-zero exit
code; an unexpected error is printed as one line too, with a hint to re-run with `--debug` for the traceback.
`--debug` is accepted before or after the sub-command. The output shows the kit's own progress bars and
messages only: transformers' and the hub's loading bars, logs and warnings are hidden unless `--verbose`. When the reader of the output goes away
(`egokit ... --json | head -1`), the command ends quietly with the status of a broken pipe (141).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from egokit.commands import discover
from egokit.commands.registry import add_commands
from egokit.errors import EgokitError

Handler = Callable[[argparse.Namespace], int | None]

#: the exit status of a command whose reader closed the pipe (128 + SIGPIPE, what a shell reports)
BROKEN_PIPE = 141
#: the exit status of an interrupted command (128 + SIGINT)
INTERRUPTED = 130
_DEBUG_HELP = "show full tracebacks on errors"
_VERBOSE_HELP = "also show the libraries' own progress bars, logs and warnings (transformers, the hub)"
#: libraries whose bars, logs and warnings the command line hides unless --verbose
_LIBRARIES = ("transformers", "huggingface_hub", "accelerate", "peft")


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="egokit",
        description="Look inside vision-language models: attention, gradients, and five research methods.",
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    discover()
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    for sub in _sub_parsers(parser):
        for flag, text in (("--debug", _DEBUG_HELP), ("--verbose", _VERBOSE_HELP)):
            if flag not in sub._option_string_actions:
                # SUPPRESS: absent after the sub-command, the root's value stands
                sub.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)
    return parser


@contextmanager
def _quiet_libraries(verbose: bool) -> Iterator[None]:
    """While a command runs, hide the libraries' progress bars, info logs and warnings (the kit's own bars
    and messages stay); everything is as before afterwards (the command line also runs inside notebooks
    and tests)."""
    if verbose:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when the libraries are imported
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    restore = []
    if "transformers" in sys.modules:  # already imported: set it directly, and put it back afterwards
        from transformers.utils import logging as hf_logging

        level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        restore.append(lambda: (hf_logging.set_verbosity(level),
                                hf_logging.enable_progress_bar() if bars else hf_logging.disable_progress_bar()))
    try:
        with warnings.catch_warnings():
            for library in _LIBRARIES:
                warnings.filterwarnings("ignore", module=rf"{library}(\.|$)")
            yield
    finally:
        for undo in restore:
            undo()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
    code = _run(argv)
    if code == INTERRUPTED and argv is None:
        _exit_interrupted()
    return code


def _run(argv: Sequence[str] | None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in a message at interpreter exit
    except BrokenPipeError:
        _discard_stdout()
        return BROKEN_PIPE
    except KeyboardInterrupt:  # a second Ctrl-C before the first was fully handled: the same one line
        print("egokit: interrupted", file=sys.stderr)
        return INTERRUPTED


def _exit_interrupted() -> None:
    """End an interrupted command-line run with status 130, now. Its clean-up is done; a normal interpreter exit
    could still turn it into death by SIGINT (status -2): CPython does that when a KeyboardInterrupt went
    through code it ran for a library (`_Py_UnhandledKeyboardInterrupt` stays set even after the kit caught
    the interrupt), which ended 1 tour in about 6 with -2 under the interrupt test."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(INTERRUPTED)


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
    interrupted = False
    try:
        with _quiet_libraries(getattr(args, "verbose", False)):
            code = func(args)
    except EgokitError as e:
        if debug:
            raise
        print(f"egokit: error: {str(e).strip()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
    except BrokenPipeError:
        raise  # the reader went away: `main` ends quietly
    except Exception as e:  # noqa: BLE001 - the CLI never shows a raw traceback
        if debug:
            raise
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        print(f"egokit: unexpected error ({type(e).__name__}: {first}); re-run with --debug for details",
              file=sys.stderr)
        return 1
    if interrupted:
        restore = _ignore_further_interrupts()
        try:
            # printed once the interrupted frames are released (cycles included), so that a progress bar
            # they held prints its last state before this line rather than after it
            gc.collect()
            print("egokit: interrupted", file=sys.stderr)
        finally:
            if argv is not None:  # called from Python (a notebook, a test): Ctrl-C works again afterwards
                restore()
        return INTERRUPTED
    return int(code or 0)


def _ignore_further_interrupts() -> Callable[[], None]:
    """After the first Ctrl-C, further ones (a key held down, a signal delivered twice) do not cut the clean-up
    short or end the process by a signal; returns what puts the earlier handler back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    earlier = signal.signal(signal.SIGINT, signal.SIG_IGN)
    return lambda: signal.signal(signal.SIGINT, earlier)


if __name__ == "__main__":
    sys.exit(main())
