"""The ``jaxeq`` command. Each subcommand lives in its own module, imported only when used,
so ``jaxeq --help`` is fast and a subcommand's heavy imports never slow the others."""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with `add_arguments(parser)` and `main(args)`, one-line help)
SUBCOMMANDS = {
    "probe": ("jaxeq.probe", "layer-by-layer equivariance table of a model or toy net"),
    "bench": ("jaxeq.bench", "time jaxeq against PyTorch in the same run"),
    "run": ("jaxeq.experiments_runner", "run an experiment config (experiments/<name>.py[:variant])"),
    "reproduce": ("jaxeq.reproduce", "reproduce the paper's experiments (--quick: CPU, minutes)"),
    "data": ("jaxeq.data.cli", "prepare or inspect data sets"),
}
# Subcommands that get jaxeq's measured CPU XLA flags (jaxeq/xla_env.py); bench sets its own.
WITH_XLA_DEFAULTS = ("probe", "run", "reproduce", "data")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="jaxeq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:  # import only the module that will run
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in WITH_XLA_DEFAULTS:
        from jaxeq import xla_env
        if not xla_env.backend_started():  # called in-process after JAX started: leave it be
            xla_env.apply_defaults()
    return int(importlib.import_module(SUBCOMMANDS[args.command][0]).main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
