"""The ``jaxeq`` command. Each subcommand lives in its own module, imported only when used,
so ``jaxeq --help`` is fast and a subcommand's heavy imports never slow the others.

A subcommand module has ``add_arguments(parser)`` and ``main(args) -> exit code``; one that
accepts arguments argparse cannot declare (``jaxeq run``'s ``--config.key=value``) also has
``take_extra_args(args, tokens) -> tokens it does not know``. A user error (ValueError,
TypeError, FileNotFoundError) prints one ``error:`` line and exits 1; ``--debug`` (or
``JAXEQ_DEBUG=1``) shows the traceback instead. Ctrl-C and SIGTERM print one line (what was
saved, how to resume) and exit 130 and 143.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable

# name -> (module with `add_arguments(parser)` and `main(args)`, one-line help)
SUBCOMMANDS = {
    "probe": ("jaxeq.cli.probe", "layer-by-layer equivariance table of a model or toy net"),
    "bench": ("jaxeq.cli.bench", "time jaxeq against PyTorch in the same run"),
    "run": ("jaxeq.cli.run", "run an experiment config (NAME[:variant] or my/exp.py[:variant])"),
    "reproduce": ("jaxeq.cli.reproduce", "reproduce the paper's experiments (--quick: CPU, minutes)"),
    "data": ("jaxeq.cli.data", "prepare or inspect data sets"),
}
# Subcommands that get jaxeq's measured CPU XLA flags (jaxeq/cli/xla_env.py); bench sets its own.
WITH_XLA_DEFAULTS = ("probe", "run", "reproduce", "data")
USER_ERRORS = (ValueError, TypeError, FileNotFoundError)
INTERRUPTED = "interrupted: finished work is kept; run the same command again to resume"


def _command_index(argv: list[str]) -> int | None:
    """Where the subcommand name sits in ``argv`` (after any global flags), or None."""
    for i, tok in enumerate(argv):
        if not tok.startswith("-"):
            return i if tok in SUBCOMMANDS else None
    return None


DESCRIPTION = textwrap.fill(
    "Measure and train translation-equivariant CNNs in JAX: the experiments of Kayhan & van "
    "Gemert, 'On Translation Invariance in CNNs' (CVPR 2020), and the tools behind them.", 78)
EXAMPLES = """examples:
  jaxeq reproduce --quick                      the paper's findings on a CPU, in minutes
  jaxeq run red_green:quick --workdir runs/rg  one experiment (the same line again resumes it)
  jaxeq probe --model resnet18                 layer-by-layer equivariance, same vs full padding
  jaxeq bench conv --quick                     jaxeq against PyTorch in the same run
  jaxeq data info photo_id --split val         build a data set split and describe it
  jaxeq COMMAND --help                         the options of one command"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks and appends "(default: X)" to an option's help unless
    the help already mentions its default or there is none to show (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False \
                or default is argparse.SUPPRESS or default == [] or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("jaxeq")
    except Exception:  # noqa: BLE001 - run from a source tree that is not installed
        return "unknown (not installed)"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    """The parsed command line (unknown tokens go to the subcommand's ``take_extra_args``, and
    any it does not take are an error naming them), and the top-level parser."""
    parser = argparse.ArgumentParser(prog="jaxeq", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also: JAXEQ_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    at = _command_index(argv)
    chosen = argv[at] if at is not None else None
    subparsers = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        subparsers[name] = p = sub.add_parser(name, help=help_text, description=help_text,
                                              formatter_class=HelpFormatter)
        if name == chosen:  # import only the module that will run
            importlib.import_module(module).add_arguments(p)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command is not None:
        take = getattr(importlib.import_module(SUBCOMMANDS[args.command][0]), "take_extra_args", None)
        extra = take(args, extra) if take is not None else extra
        if extra:
            subparsers[args.command].error(f"unrecognized argument {extra[0]!r}"
                                           + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    elif extra:
        parser.error(f"unrecognized argument {extra[0]!r}")
    return args, parser


# What JAX appends to an error raised inside a transformed function (model.apply, jit).
JAX_NOTE = "\n--------------------\nFor simplicity, JAX has removed"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split(JAX_NOTE)[0].split()) or type(err).__name__


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the program is, so that it unwinds as Ctrl-C does."""


def _raise_terminated(signum, frame):
    raise Terminated()


def guarded(command: Callable[[], int | None], debug: bool = False) -> int:
    """``command()``'s exit code; a user error prints one ``error:`` line (exit 1, or the
    traceback when ``debug``), Ctrl-C or SIGTERM one line saying what was saved (130 / 143)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        return int(command() or 0)
    except KeyboardInterrupt as e:
        print(f"\n{_one_line(e) if str(e) else INTERRUPTED}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args, parser = parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("JAXEQ_DEBUG") == "1"
    if args.command in WITH_XLA_DEFAULTS:
        from jaxeq.cli import xla_env
        if not xla_env.backend_started():  # called in-process after JAX started: leave it be
            xla_env.apply_defaults()
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return guarded(lambda: module.main(args), debug)


if __name__ == "__main__":
    sys.exit(main())
