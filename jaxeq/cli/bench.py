"""``jaxeq bench``: time jaxeq against its PyTorch counterpart in the same run.

    jaxeq bench [conv|models|probe|train|data|lie|shifts|all] [--json out.json] [--overwrite]
                [--repeats N] [--device cpu|gpu] [--tf32] [--quick]

The timing itself lives in :mod:`jaxeq.bench`; this module reads the command line, sets the
environment before JAX starts, prints each row as it comes and writes the JSON rows.

``--json FILE`` is rewritten atomically (temp + rename) after every finished row, so a crash
keeps the rows done so far. Each row records the options that produced it (``bench_args``);
an existing FILE is replaced only when all its rows come from the same options (the same
command run again), or with ``--overwrite``; otherwise the command stops before timing
anything.
"""
from __future__ import annotations

import argparse
import json
import os

from jaxeq import _checks, atomic

# the options that define a run's rows (what makes an existing --json file "ours")
ROW_OPTIONS = ("group", "repeats", "warmup", "device", "quick", "xla_flags", "only", "tf32")
# options added after rows were first written: their value in rows that do not record them
OPTION_DEFAULTS = {"tf32": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxeq.bench import GROUPS
    parser.add_argument("group", nargs="?", default="all", choices=tuple(GROUPS) + ("all",),
                        help="which rows to run (default: all)")
    parser.add_argument("--json", metavar="FILE",
                        help="write the rows as a JSON list, rewritten after every finished row; "
                             "an existing FILE from other options is refused (see --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --json FILE whatever wrote it (without this, "
                             "only a FILE from the same options is replaced)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed rounds per row (>= 5 for reported numbers; default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds per row")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="run both frameworks on this device (gpu: CUDA builds)")
    parser.add_argument("--tf32", action="store_true",
                        help="gpu: let both frameworks round float32 convolutions and matmuls to "
                             "TF32 (without it both run full float32, what the checks assume)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (smoke test of the harness, not a benchmark)")
    parser.add_argument("--xla-flags", default=None, metavar="FLAGS",
                        help="XLA flags to use instead of the measured defaults ('' for none)")
    parser.add_argument("--only", default=None, metavar="SUBSTR",
                        help="run only rows whose id contains SUBSTR (several: A,B)")


def bench_args(args: argparse.Namespace) -> dict:
    """The options recorded in every row (``bench_args``)."""
    return {k: getattr(args, k) for k in ROW_OPTIONS}


def check_target(path: str, options: dict, overwrite: bool) -> None:
    """Refuse to replace an existing ``path`` that is not rows of these ``options``."""
    if overwrite or not os.path.exists(path):
        return
    try:
        with open(path) as f:
            rows = json.load(f)
    except (OSError, ValueError):
        rows = None
    if isinstance(rows, list) and all(isinstance(r, dict) and isinstance(r.get("bench_args"), dict)
                                      and {**OPTION_DEFAULTS, **r["bench_args"]} == options
                                      for r in rows):
        return
    raise ValueError(f"--json {path} exists and holds no rows of these options ({options}); "
                     f"pass --overwrite to replace it, or choose another file")


class RowFile:
    """The --json file, rewritten atomically with all rows so far after each finished row."""

    def __init__(self, path: str, options: dict):
        self.path, self.options, self.rows = path, options, []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.write(self.rows)

    def write(self, rows: list[dict]) -> None:
        for r in rows:
            r["bench_args"] = self.options
        atomic.write_json(self.path, rows, indent=1)


def main(args: argparse.Namespace) -> int:
    from jaxeq import bench
    _checks.int_at_least("--repeats", args.repeats, 1)
    _checks.int_at_least("--warmup", args.warmup, 0)
    if args.tf32 and args.device != "gpu":
        raise ValueError("--tf32 applies to --device gpu only (CPUs compute float32 in full)")
    out = None
    if args.json:
        check_target(args.json, bench_args(args), args.overwrite)
        out = RowFile(args.json, bench_args(args))
    env = bench.configure_environment(args.device, args.xla_flags, tf32=args.tf32)
    groups = list(bench.GROUPS) if args.group == "all" else [args.group]
    print(" ".join(f"{k}={v!r}" for k, v in env.items()), flush=True)

    def log(msg):
        print(bench.format_row(msg) if isinstance(msg, dict) else msg, flush=True)
        if out is not None and isinstance(msg, dict):
            out.add(msg)

    rows = bench.run(groups, repeats=args.repeats, warmup=args.warmup, device=args.device,
                     quick=args.quick, only=args.only, tf32=args.tf32, log=log)
    if out is not None:
        out.write(rows)  # every row, with the machine's end-of-run load
        print(f"wrote {len(rows)} rows to {args.json}")
    return 0
