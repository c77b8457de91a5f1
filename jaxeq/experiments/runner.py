"""The generic runner behind ``jaxeq run NAME[:variant] --workdir DIR [--config.key=value ...]``.

Runs every cell of an experiment's table (padding variants x archs x inits x borders x images per
class x seeds), each in its own sub-workdir through :func:`jaxeq.train.fit`, skips cells that
already finished (so an interrupted run is resumed by running the same command again), and writes
into ``DIR``: ``results.json`` (every cell's numbers, the config, the hardware), ``results.md``
(our numbers beside the paper's, in the paper's layout) and PNG plots
(:mod:`jaxeq.experiments.reports`).

An experiment config (``get_config(arg) -> ConfigDict``) holds:

- ``experiment``: one of :data:`jaxeq.experiments.reports.EXPERIMENTS` (selects the table layout);
  ``variant``, ``title``, ``notes`` (lines for results.md);
- ``train``: a :func:`jaxeq.train.default_config` with the experiment's protocol filled in;
- the axes, each optional: ``variants``, ``archs``, ``inits``, ``borders``, ``images_per_class``,
  ``seeds``. A label of an axis may have an entry in ``<axis>_defs`` (``variant_defs``,
  ``arch_defs``, ``init_defs``): a nested dict merged into ``train``; and the axis value itself
  is written at the dotted path ``targets.<axis>`` (archs -> ``model.name``, borders ->
  ``data.kwargs.border``, images_per_class -> ``data.kwargs.images_per_class``, seeds -> ``seed``);
- ``metrics``: reported metric name -> test split whose accuracy it is (e.g. ``similar: test``),
  measured with the best-validation parameters; ``"<split>@final"`` measures it with the
  parameters after the last epoch instead (e.g. ``top1_final: val@final``);
- ``paper_key``: variant label -> the paper's name for it in ``paper_results.json``;
- ``eval``: an evaluation after training, chosen by ``eval.kind`` among the registered
  evaluators (:mod:`jaxeq.experiments.evaluators`, e.g. E3's ``shift_robustness``);
- ``runner`` (optional): the module of an experiment with its own training loop (E4b's triplet
  training, :mod:`jaxeq.experiments.patch_matching_train`); its ``run`` and ``prepare`` take over.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import ml_collections

from jaxeq import atomic
from jaxeq.experiments import reports
from jaxeq.experiments.grid import (CELL_CONFIG, CELL_FILE, cell_dir, cell_run_settings, cells,
                                    identity_json, read_cell, write_cell)
from jaxeq.experiments.evaluators import (add_missing_metrics, after_training, merge_evaluation,
                                          metric_target)
from jaxeq.experiments.overrides import config_changes, overrides_note
from jaxeq.experiments.provenance import provenance
from jaxeq.experiments.sources import cell_sources
from jaxeq.experiments.validation import prepare


def _accuracy_percent(results: Mapping, split: str) -> float | None:
    """Test accuracy (%) on ``split`` from :func:`jaxeq.train.fit`'s results dict."""
    test = results.get("test", {})
    entry = test.get(split) if isinstance(test, Mapping) else None
    if entry is None and split in results:
        entry = results[split]
    if entry is None:
        return None
    acc = entry.get("accuracy") if isinstance(entry, Mapping) else entry
    if acc is None:
        return None
    return float(acc) * 100.0  # fit reports fractions; tables are in percent


def record_from_results(name: str, coords: Mapping, results: Mapping, metric_splits: Mapping,
                        wall_s: float, extra: Mapping | None = None) -> dict:
    """A cell's record: its coordinates, metrics (percent), epochs run and wall time, and under
    ``evaluated_with`` which parameters the numbers come from (the trainer's ``test_params``,
    an evaluator's labels)."""
    metrics = {m: _accuracy_percent(results, split) for m, split in metric_splits.items()
               if metric_target(split)[1] == "best"}
    record = {"name": name, "cell": dict(coords), "metrics": metrics,
              "epochs": results.get("epochs_run", results.get("epochs")), "wall_s": round(wall_s, 2)}
    if results.get("test_params"):
        record["evaluated_with"] = {"test_params": results["test_params"]}
    return merge_evaluation(record, extra or {})


def hardware() -> dict:
    import jax

    d = jax.devices()[0]
    return {"platform": d.platform, "device_kind": getattr(d, "device_kind", "?"),
            "device_count": jax.device_count(), "process_count": jax.process_count(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def run_cell(config: ml_collections.ConfigDict, cell: Mapping, workdir: Path, *,
             fit: Callable | None = None, log: Callable[[str], None] = print) -> dict:
    """Train (or resume, or load) one cell; returns its record (also saved as ``cell.json``)."""
    subdir = cell_dir(workdir, cell["name"])
    if (subdir / CELL_FILE).is_file():
        record = read_cell(subdir)
        record.pop(CELL_CONFIG, None)
        return add_missing_metrics(config, cell, record, subdir, log=log)
    subdir.mkdir(parents=True, exist_ok=True)
    train_cfg, split_kwargs = cell_run_settings(config, cell["cell"])
    if fit is None:
        from jaxeq.train import fit
    t0 = time.perf_counter()
    sources = cell_sources(train_cfg, split_kwargs, subdir)
    results = fit(train_cfg, str(subdir)) if sources is None else fit(train_cfg, str(subdir), sources=sources)
    extra = after_training(config, train_cfg, split_kwargs, subdir)
    record = record_from_results(cell["name"], cell["cell"], results, dict(config.metrics),
                                 time.perf_counter() - t0, extra)
    write_cell(subdir, record, {"experiment": config.experiment, **identity_json(train_cfg, split_kwargs)})
    return record


def write_outputs(config: ml_collections.ConfigDict, records: Sequence[Mapping], workdir: Path, *,
                  wall_s: float | None = None, paper: Mapping | None = None,
                  origin: Mapping | None = None) -> dict:
    """results.json, results.md and the plots for the records so far.

    ``origin``: the command, source revision and versions (:func:`provenance`, taken now when
    not given; :func:`run` takes it when it starts, before any later edit of the sources).

    The paper's numbers come from a ``paper_results.json`` beside the config file when there is
    one, else from the copy shipped with jaxeq."""
    workdir.mkdir(parents=True, exist_ok=True)
    if paper is None:
        path = Path(config.get("config_path", "")).parent / "paper_results.json"
        paper = reports.load_paper_results(path if path.is_file() else None)
    cfg = config.to_dict()
    changes = config_changes(config)
    notes = list(config.get("notes", ()) or ()) + [overrides_note(config, changes)]
    md = reports.results_markdown(config.experiment, records, cfg, paper,
                                  title=config.get("title"), notes=notes)
    atomic.write_text(workdir / "results.md", md)
    plots = reports.plot(config.experiment, records, cfg, paper, workdir)
    summary = {"experiment": config.experiment, "variant": config.get("variant"),
               "wall_s": wall_s, "hardware": hardware(),
               **(provenance() if origin is None else origin),
               "records": list(records),
               "plots": [str(p) for p in plots],
               "overrides": list(config.get("overrides", ()) or ()),
               "changed_from_file": {k: [a, b] for k, (a, b) in changes.items()},
               "config": json.loads(config.to_json_best_effort())}
    atomic.write_json(workdir / "results.json", summary, indent=1)
    return {"markdown": md, "plots": plots, "results": workdir / "results.json"}


class _Eta:
    """Time left, from the mean wall time of the cells trained so far in this run (cached cells
    cost nothing and are not counted)."""

    def __init__(self, to_train: Sequence[bool]):
        self.to_train, self.spent, self.trained = list(to_train), 0.0, 0

    def after(self, index: int, took: float) -> str:
        if not self.to_train[index]:
            return ""
        self.spent += took
        self.trained += 1
        left = sum(self.to_train[index + 1:])
        if not left:
            return ""
        return f"; {left} cells left, about {_minutes(self.spent / self.trained * left)}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, fit: Callable | None = None,
        log: Callable[[str], None] = print, force: bool = False) -> dict:
    """Run every cell (skipping finished ones) and write the experiment's outputs.

    Before anything trains: every cell's settings are validated
    (:func:`jaxeq.experiments.validation.validate_cells`) and a cell already in ``workdir`` is
    reused only if its recorded settings match this run's; otherwise a ValueError, or with
    ``force`` the mismatching cells are deleted and retrained.
    """
    if config.get("runner"):  # an experiment with its own loop (config.runner: its module)
        return importlib.import_module(config.runner).run(config, workdir, log=log, force=force)
    workdir = Path(workdir)
    origin = provenance()
    all_cells = cells(config)
    plan = prepare(config, workdir, force=force)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, why in plan["stale"]:
        log(f"--force: retraining {name} ({why}); its old folder is deleted")
        shutil.rmtree(cell_dir(workdir, name))
    t0 = time.perf_counter()
    records = []
    eta = _Eta([not (cell_dir(workdir, c["name"]) / CELL_FILE).is_file() for c in all_cells])
    for i, cell in enumerate(all_cells, 1):
        tc = time.perf_counter()
        cached = (cell_dir(workdir, cell["name"]) / CELL_FILE).is_file()
        rec = run_cell(config, cell, workdir, fit=fit, log=log)
        records.append(rec)
        shown = ", ".join(f"{k} {v:.1f}" for k, v in rec["metrics"].items() if isinstance(v, (int, float)))
        took = time.perf_counter() - tc
        log(f"[{i}/{len(all_cells)}] {config.experiment} {cell['name']}: {shown}"
            f" ({'cached' if cached else f'{took:.1f} s'}){eta.after(i - 1, took)}")
    out = write_outputs(config, records, workdir, wall_s=round(time.perf_counter() - t0, 1),
                        origin=origin)
    out["records"] = records
    return out
