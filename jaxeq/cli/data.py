"""``jaxeq data``: prepare or inspect data sets.

  jaxeq data prepare-imagenet --manual-dir DIR [--data-dir D] [--run]
  jaxeq data info NAME [--split S] [--seed N] [--kw key=value ...]
  jaxeq data throughput [--num-images N] [--workers W]
"""
from __future__ import annotations

import argparse
import ast
import json
import shlex
import subprocess
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    fmt = parser.formatter_class  # the dispatcher's: shows each option's default
    p = sub.add_parser("prepare-imagenet", formatter_class=fmt,
                       help="print (or run) the tfds command that prepares imagenet2012 as "
                            "ArrayRecord from the official tar files")
    p.add_argument("--manual-dir", required=True,
                   help="folder holding ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar")
    p.add_argument("--data-dir", default=None, help="tfds data dir (default ~/tensorflow_datasets)")
    p.add_argument("--run", action="store_true", help="run the command (needs TensorFlow)")
    p = sub.add_parser("info", formatter_class=fmt, help="build a data set split and describe it")
    p.add_argument("name", help="a registered data set (one of jaxeq.data.names(), e.g. "
                                "photo_id, red_green, imagenet)")
    p.add_argument("--split", default="train", help="which split to build (train, val, test, "
                                                    "or the data set's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated data sets")
    p.add_argument("--kw", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the data set (value parsed as a Python literal); "
                        "repeat for several")
    p = sub.add_parser("throughput", formatter_class=fmt,
                       help="host decode + augment images/s on generated JPEGs")
    p.add_argument("--num-images", type=int, default=256,
                   help="JPEGs to generate and decode (ImageNet-like size), at least 1")
    p.add_argument("--workers", type=int, default=None,
                   help="decode threads of the multi-threaded rate (default: all cores)")


def _kwargs(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--kw expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a bare string such as a path
    return out


def main(args: argparse.Namespace) -> int:
    from jaxeq.data import imagenet as inet

    if args.data_command == "prepare-imagenet":
        try:
            manual = inet.check_manual_dir(args.manual_dir)
        except inet.DataNotPreparedError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        cmd = inet.prepare_command(manual, args.data_dir)
        print(cmd)
        if args.run:
            return subprocess.call(shlex.split(cmd))
        print("(needs TensorFlow: pip install -e '.[imagenet]'; add --run to run it)")
        return 0
    if args.data_command == "info":
        import jaxeq.data as data

        start = time.perf_counter()
        try:
            source = data.get(args.name, split=args.split, seed=args.seed, **_kwargs(args.kw))
        except (inet.DataNotPreparedError, ValueError, TypeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        built = time.perf_counter() - start
        sample = source[0]
        print(json.dumps({
            "name": args.name, "split": args.split, "len": len(source),
            "num_classes": getattr(source, "num_classes", None),
            "image_shape": list(sample["image"].shape), "image_dtype": str(sample["image"].dtype),
            "description": getattr(source, "description", ""), "build_seconds": round(built, 3),
        }, indent=1))
        return 0
    if args.data_command == "throughput":
        from jaxeq.data.throughput import measure

        print(json.dumps(measure(args.num_images, args.workers), indent=1))
        return 0
    print("usage: jaxeq data {prepare-imagenet,info,throughput} ... (see --help)", file=sys.stderr)
    return 2
