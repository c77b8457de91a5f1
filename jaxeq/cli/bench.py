"""``jaxeq bench``: time jaxeq against its PyTorch counterpart in the same run.

    jaxeq bench [conv|models|probe|train|data|all] [--json out.json] [--repeats N]
                [--device cpu|gpu] [--quick]

The timing itself lives in :mod:`jaxeq.bench`; this module reads the command line, sets the
environment before JAX starts, prints each row as it comes and writes the JSON rows.
"""
from __future__ import annotations

import argparse
import json

from jaxeq import _checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxeq.bench import GROUPS
    parser.add_argument("group", nargs="?", default="all", choices=tuple(GROUPS) + ("all",),
                        help="which rows to run (default: all)")
    parser.add_argument("--json", metavar="FILE", help="write the rows as a JSON list")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed rounds per row (>= 5 for reported numbers; default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds per row")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="run both frameworks on this device (gpu: CUDA builds)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (smoke test of the harness, not a benchmark)")
    parser.add_argument("--xla-flags", default=None, metavar="FLAGS",
                        help="XLA flags to use instead of the measured defaults ('' for none)")
    parser.add_argument("--only", default=None, metavar="SUBSTR",
                        help="run only rows whose id contains SUBSTR")


def main(args: argparse.Namespace) -> int:
    from jaxeq import bench
    _checks.int_at_least("--repeats", args.repeats, 1)
    _checks.int_at_least("--warmup", args.warmup, 0)
    env = bench.configure_environment(args.device, args.xla_flags)
    groups = list(bench.GROUPS) if args.group == "all" else [args.group]
    print(f"XLA_FLAGS={env['XLA_FLAGS']!r}", flush=True)

    def log(msg):
        print(bench.format_row(msg) if isinstance(msg, dict) else msg, flush=True)

    rows = bench.run(groups, repeats=args.repeats, warmup=args.warmup, device=args.device,
                     quick=args.quick, only=args.only, log=log)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"wrote {len(rows)} rows to {args.json}")
    return 0
