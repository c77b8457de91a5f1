"""Results tables and plots of the paper's experiments: our numbers beside the paper's.

One module per experiment (``table(records, config, paper) -> markdown``, ``plot(records,
config, paper, outdir) -> [png paths]``, optionally ``notes(config) -> [lines]`` derived from the
config so they follow command-line overrides), sharing :mod:`.common`. Everything works on the
records the runner writes into ``results.json``, so tables can be rebuilt (and tested) from
given numbers without running anything. The paper's numbers ship as ``paper_results.json``.
"""
from __future__ import annotations

import importlib
import json
from importlib import resources
from pathlib import Path
from typing import Sequence

from jaxeq._checks import choice

EXPERIMENTS = ("rook", "red_green", "quadrant", "shift_robustness", "data_efficiency",
               "patch_matching", "action_recognition")


def _module(experiment: str):
    choice("experiment", experiment, EXPERIMENTS)
    return importlib.import_module(f"{__name__}.{experiment}")


def load_paper_results(path: str | Path | None = None) -> dict:
    """The paper's numbers: ``path``, or the ``paper_results.json`` shipped with jaxeq."""
    if path is None:
        return json.loads(resources.files("jaxeq.experiments").joinpath("paper_results.json").read_text())
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"paper results not found at {path}")
    return json.loads(path.read_text())


def table(experiment: str, records, config, paper) -> str:
    return _module(experiment).table(list(records), config, paper)


def results_markdown(experiment: str, records, config, paper, *, title: str | None = None,
                     notes: Sequence[str] = ()) -> str:
    """The whole ``results.md``: a title, the table and the notes (scale, data, caveats)."""
    auto_notes = getattr(_module(experiment), "notes", lambda c: [])
    parts = [f"# {title or experiment}", "",
             "Our numbers beside the paper's (Kayhan & van Gemert, CVPR 2020). Ours: mean ± "
             "population std over the seeds that ran (n). Accuracies in %.", "",
             table(experiment, records, config, paper), ""]
    parts += [f"- {n}" for n in list(notes) + list(auto_notes(config))]
    return "\n".join(parts).rstrip() + "\n"


def plot(experiment: str, records, config, paper, outdir: str | Path) -> list[Path]:
    """Write the experiment's PNG plots into ``outdir``; returns their paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    return _module(experiment).plot(list(records), config, paper, outdir)
