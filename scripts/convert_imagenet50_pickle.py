"""Convert the official ImageNet-50-per-class list (E4a) into jaxeq's JSON resource.

    python scripts/convert_imagenet50_pickle.py train.pickle [--out jaxeq/resources/imagenet50_official.json]

The input is ``full_conv/Exp4_data_efficiency/imagenet_classification/train.pickle`` of the
paper's repository (oskyhn/CNNs-Without-Borders, commit 4fae1d8); from a mirror:
``git show 4fae1d8:full_conv/Exp4_data_efficiency/imagenet_classification/train.pickle``.
It is a pickled list of 50,000 ``[wnid, file name]`` pairs (file names like
``n01440764_2823.JPEG``). The pickle is never loaded with ``pickle``: a small interpreter over
``pickletools.genops`` accepts only the opcodes that build lists of strings and rejects every
other one (no globals, no calls), so the file cannot run code.

Output (``jaxeq.data.imagenet.official_50_per_class`` reads it as package data)::

    {"source": ..., "commit": ..., "sha256": <of the pickle>, "name_format": "{wnid}_{n}.JPEG",
     "classes": 1000, "per_class": 50, "files": {wnid: [n, ...] ascending}}

Storing the number ``n`` only is exact: the script checks that every name is
``f"{wnid}_{int(n)}.JPEG"`` (same wnid as its pair, no leading zeros) and that rebuilding all
names from the JSON gives back the pickle's set of 50,000 pairs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pickletools
import re
import sys
from collections import Counter
from pathlib import Path

SOURCE = ("oskyhn/CNNs-Without-Borders: "
          "full_conv/Exp4_data_efficiency/imagenet_classification/train.pickle")
COMMIT = "4fae1d8"
NAME_FORMAT = "{wnid}_{n}.JPEG"
_NAME = re.compile(r"(n\d{8})_([1-9]\d*)\.JPEG")
_WNID = re.compile(r"n\d{8}")


def parse_list_of_str_pickle(raw: bytes):
    """The object of a pickle made only of (nested) lists of str; anything else raises ValueError.

    Supports the opcodes a protocol 2-5 ``pickle.dumps`` of such an object uses; memo reads
    return the same object, as pickle does.
    """
    stack: list = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    result = None
    for op, arg, pos in pickletools.genops(raw):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "EMPTY_LIST":
            stack.append([])
        elif name in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE"):
            stack.append(arg)
        elif name == "MARK":
            marks.append(len(stack))
        elif name == "APPEND":
            item = stack.pop()
            _list_at(stack, -1, pos).append(item)
        elif name == "APPENDS":
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            _list_at(stack, -1, pos).extend(items)
        elif name == "LIST":
            start = marks.pop()
            items = stack[start:]
            del stack[start:]
            stack.append(list(items))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            if int(arg) not in memo:
                raise ValueError(f"pickle reads memo {arg} before writing it (byte {pos})")
            stack.append(memo[int(arg)])
        elif name == "STOP":
            if len(stack) != 1 or marks:
                raise ValueError(f"malformed pickle: {len(stack)} objects left at STOP")
            result = stack.pop()
            break
        else:
            raise ValueError(f"pickle opcode {name} at byte {pos} is not allowed (only lists of "
                             f"str are accepted)")
    if result is None:
        raise ValueError("pickle has no STOP opcode")
    return result


def _list_at(stack: list, i: int, pos: int) -> list:
    if not stack or not isinstance(stack[i], list):
        raise ValueError(f"malformed pickle: append to a non-list at byte {pos}")
    return stack[i]


def convert(raw: bytes) -> dict:
    """The JSON resource for the pickle's bytes (raises ValueError if the structure differs)."""
    pairs = parse_list_of_str_pickle(raw)
    if not isinstance(pairs, list) or len(pairs) != 50_000:
        raise ValueError(f"expected a list of 50000 pairs, got {type(pairs).__name__} of "
                         f"{len(pairs) if isinstance(pairs, list) else '?'}")
    files: dict[str, list[int]] = {}
    for k, pair in enumerate(pairs):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise ValueError(f"entry {k} is not a [wnid, file name] pair of str: {pair!r}")
        wnid, fname = pair
        m = _NAME.fullmatch(fname)
        if not _WNID.fullmatch(wnid) or m is None or m.group(1) != wnid:
            raise ValueError(f"entry {k}: {pair!r} is not [wnid, '<wnid>_<n>.JPEG']")
        files.setdefault(wnid, []).append(int(m.group(2)))
    counts = Counter(len(v) for v in files.values())
    if len(files) != 1000 or counts != Counter({50: 1000}):
        raise ValueError(f"expected 1000 classes x 50 files, got {len(files)} classes with "
                         f"sizes {dict(counts)}")
    if len({(w, n) for w, ns in files.items() for n in ns}) != 50_000:
        raise ValueError("the list holds duplicate files")
    out = {"source": SOURCE, "commit": COMMIT, "sha256": hashlib.sha256(raw).hexdigest(),
           "name_format": NAME_FORMAT, "classes": 1000, "per_class": 50,
           "files": {w: sorted(files[w]) for w in sorted(files)}}
    rebuilt = {(w, NAME_FORMAT.format(wnid=w, n=n)) for w, ns in out["files"].items() for n in ns}
    if rebuilt != {tuple(p) for p in pairs}:
        raise ValueError("rebuilding the names from the JSON does not give the pickle's pairs")
    return out


def dumps(resource: dict) -> str:
    """Compact JSON with one line per class (diffable, ~0.3 MB)."""
    head = {k: v for k, v in resource.items() if k != "files"}
    lines = [json.dumps(head)[:-1] + ', "files": {']
    items = list(resource["files"].items())
    for i, (w, ns) in enumerate(items):
        lines.append(f'"{w}": {json.dumps(ns, separators=(",", ":"))}'
                     + ("," if i < len(items) - 1 else ""))
    lines.append("}}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == resource
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pickle", help="the official train.pickle")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "jaxeq" /
                                        "resources" / "imagenet50_official.json"))
    args = p.parse_args(argv)
    resource = convert(Path(args.pickle).read_bytes())
    Path(args.out).write_text(dumps(resource))
    print(f"{args.out}: {len(resource['files'])} classes x {resource['per_class']} files, "
          f"sha256 of the pickle {resource['sha256']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
