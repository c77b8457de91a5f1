"""The ``jaxeq`` command. Each subcommand lives in its own module, imported only when used,
so ``jaxeq --help`` is fast and a subcommand's heavy imports never slow the others.

A subcommand module has ``add_arguments(parser)`` and ``main(args) -> exit code``; one that
accepts arguments argparse cannot declare (``jaxeq run``'s ``--config.key=value``) also has
``take_extra_args(args, tokens) -> tokens it does not know``. A user error (ValueError,
TypeError, FileNotFoundError) prints one ``error:`` line and exits 1; ``--debug`` (or
``JAXEQ_DEBUG=1``) shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

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


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    """The parsed command line (unknown tokens go to the subcommand's ``take_extra_args``, and
    any it does not take are an error naming them), and the top-level parser."""
    parser = argparse.ArgumentParser(
        prog="jaxeq", description="Translation equivariance of CNNs: the experiments of Kayhan & "
                                  "van Gemert (CVPR 2020) and the tools behind them.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also: JAXEQ_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    at = _command_index(argv)
    chosen = argv[at] if at is not None else None
    subparsers = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        subparsers[name] = p = sub.add_parser(name, help=help_text)
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


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


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
    try:
        return int(importlib.import_module(SUBCOMMANDS[args.command][0]).main(args) or 0)
    except KeyboardInterrupt:
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
