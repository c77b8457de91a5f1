"""``jaxeq reproduce --quick [--workdir DIR] [--only PART ...]``: the paper's findings on a laptop
CPU (what runs: :mod:`jaxeq.experiments.reproduce`)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxeq.experiments.reproduce import NAMED_ONLY_PLAN, PARTS

    parser.add_argument("--quick", action="store_true",
                        help="CPU-sized runs (minutes on a laptop); the only mode so far")
    parser.add_argument("--workdir", default="runs/reproduce_quick", help="output folder (resumable)")
    parser.add_argument("--only", nargs="+", default=None, choices=PARTS, metavar="PART",
                        help=f"run only these parts (one or more of: {', '.join(PARTS)}; "
                             f"{' and '.join(p[0] for p in NAMED_ONLY_PLAN)} (the E4b / E5 CPU "
                             f"analogs, tens of minutes) run only when named)")


def main(args: argparse.Namespace) -> int:
    from jaxeq.cli import xla_env
    from jaxeq.experiments.reproduce import run_quick

    if not args.quick:
        print("Only --quick is implemented here; the full protocols are\n"
              "  jaxeq run NAME --workdir DIR   (NAME: rook, red_green, quadrant, shift_robustness, "
              "data_efficiency, patch_matching, action_recognition)")
        return 2
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    xla_env.enable_compilation_cache(root / ".xla_cache")  # seeds 2.. of a cell reuse the programs
    run_quick(root, args.only, log=lambda s: print(s, flush=True))
    return 0
