"""Keep a results document's tables equal to what committed results files render to.

A table in a markdown document (``experiments/RESULTS.md``) is marked with the results folder it
comes from, relative to the document::

    <!-- table: results/e3_shift_robustness_cpu -->
    | arch | variant | ... |
    <!-- /table -->

and its body is exactly ``reports.table`` of that folder's ``results.json`` (records and config,
the paper's numbers shipped with jaxeq). ``python -m jaxeq.experiments.results_doc DOC`` rewrites
the marked tables; ``--check`` only reports the ones that differ (exit 1), which the tests run.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from jaxeq import atomic
from jaxeq.experiments import reports

# the body (possibly empty) may not contain another marker: an unclosed block never swallows
# the text up to a later block's end
MARKED = re.compile(r"(<!-- table: (?P<dir>\S+) -->)(?P<body>(?:(?!<!-- /?table).)*?)"
                    r"(<!-- /table -->)", re.S)


def render(results_dir: str | Path) -> str:
    """The markdown table of the run saved in ``results_dir/results.json``."""
    path = Path(results_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"results_dir has no results.json: {path}")
    summary = json.loads(path.read_text())
    if summary.get("experiment") == "position_information":  # a study, not a runner table
        from jaxeq.experiments import position_probe
        return position_probe.markdown(summary["results"]).strip()
    return reports.table(summary["experiment"], summary["records"], summary["config"],
                         reports.load_paper_results()).strip()


def sync(doc: str | Path, *, write: bool = True) -> list[str]:
    """Re-render every marked table of ``doc``; returns the folders whose table changed (and
    writes the document when ``write``)."""
    doc = Path(doc)
    text = doc.read_text()
    changed: list[str] = []

    def replace(m: re.Match) -> str:
        body = render(doc.parent / m["dir"])
        if body != m["body"].strip():
            changed.append(m["dir"])
        return m.group(1) + "\n" + body + "\n" + m.group(4)

    new = MARKED.sub(replace, text)
    if write and changed:
        atomic.write_text(doc, new)
    return changed


def marked_folders(doc: str | Path) -> list[str]:
    return [m["dir"] for m in MARKED.finditer(Path(doc).read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("doc", help="markdown file with <!-- table: DIR --> blocks")
    parser.add_argument("--check", action="store_true", help="report differing tables, write nothing")
    args = parser.parse_args(argv)
    changed = sync(args.doc, write=not args.check)
    for d in changed:
        print(f"{'differs' if args.check else 'updated'}: {d}")
    return 1 if (changed and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
