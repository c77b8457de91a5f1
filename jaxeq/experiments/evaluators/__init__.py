"""Evaluations of a trained cell, beside the test accuracies the trainer reports.

- ``config.metrics``: reported metric -> split whose top-1 it is; ``"<split>@final"`` measures
  it on the parameters after the last epoch (:func:`final_metrics`), else the trainer's result
  on the best-validation parameters is used.
- ``config.eval``: an evaluator chosen by ``config.eval.kind`` from :data:`EVALUATORS` (loaded
  by name, so the runner knows none of them). An evaluator is a module or object with
  ``models(ev)``, ``missing(ev, metrics)``, ``metric_names(models, ev)`` and
  ``evaluate(train_cfg, cell_dir, ev, models) -> metrics``.

Metrics a config asks for that a finished cell lacks are evaluated on its checkpoints, never by
retraining (:func:`add_missing_metrics`).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Mapping

from jaxeq._checks import choice
from jaxeq.experiments.grid import CELL_CONFIG, cell_settings, read_cell, write_cell
from jaxeq.experiments.evaluators.checkpoints import (FINAL, load_trained, load_trained_cell,
                                                      metric_target, model_suffix, top1_percent)

__all__ = ["EVALUATORS", "FINAL", "add_missing_metrics", "after_training", "evaluator",
           "merge_evaluation",
           "final_metrics", "load_trained", "load_trained_cell", "metric_target", "model_suffix",
           "register", "top1_percent"]

# eval kind -> evaluator, or the module path of one (imported when first used)
EVALUATORS: dict[str, Any] = {
    "shift_robustness": "jaxeq.experiments.evaluators.shift_robustness",
    "video": "jaxeq.experiments.evaluators.video",
}


def register(kind: str, evaluator: Any) -> None:
    """Make ``evaluator`` available as ``config.eval.kind = kind``."""
    EVALUATORS[kind] = evaluator


def evaluator(config):
    """``(evaluator, config.eval)`` of the config, or None when it asks for no evaluation."""
    ev = config.get("eval")
    if ev is None:
        return None
    kind = choice("config.eval.kind", ev.get("kind"), tuple(EVALUATORS))
    if isinstance(EVALUATORS[kind], str):
        EVALUATORS[kind] = importlib.import_module(EVALUATORS[kind])
    return EVALUATORS[kind], ev


def final_metrics(config, train_cfg, split_kwargs, cell_dir: Path, names) -> dict:
    """The ``<split>@final`` metrics among ``names``, on the cell's last-epoch parameters."""
    out = {}
    for metric in names:
        split, which = metric_target(config.metrics[metric])
        if which == FINAL:
            out[metric] = top1_percent(train_cfg, split_kwargs, split, cell_dir, which)
    return out


def after_training(config, train_cfg, split_kwargs, cell_dir: Path) -> dict:
    """Every metric of a freshly trained cell that the trainer's results do not hold."""
    out = final_metrics(config, train_cfg, split_kwargs, cell_dir, dict(config.metrics))
    chosen = evaluator(config)
    if chosen is not None:
        ev_mod, ev = chosen
        out.update(ev_mod.evaluate(train_cfg, str(cell_dir), ev, ev_mod.models(ev)))
    return out


def merge_evaluation(record: dict, values: Mapping) -> dict:
    """Put an evaluation's numbers into ``record["metrics"]`` and its labels (strings: which
    parameters gave the numbers, e.g. ``shift_eval_params``) into ``record["evaluated_with"]``,
    so that every metric stays a number."""
    for k, v in values.items():
        if isinstance(v, str):
            record.setdefault("evaluated_with", {})[k] = v
        else:
            record.setdefault("metrics", {})[k] = v
    return record


def add_missing_metrics(config, cell: Mapping, record: dict, cell_dir: Path, *,
                        log: Callable[[str], None] = print) -> dict:
    """A finished cell's record, plus the metrics the config now asks for that it lacks.

    Metrics added to a config after its cells ran are evaluated on the cell's checkpoints (the
    best-validation one, or the last epoch's for ``<split>@final`` and an evaluator's 'final'
    model), never by retraining; they are listed under ``posthoc_metrics`` in the record and
    ``cell.json`` is rewritten.
    """
    have = record.get("metrics", {})
    missing = [m for m in dict(config.get("metrics", {}) or {}) if m not in have]
    chosen = evaluator(config)
    ev_missing = chosen[0].missing(chosen[1], have) if chosen is not None else ()
    if not missing and not ev_missing:
        return record
    train_cfg, split_kwargs = cell_settings(config, cell["cell"])
    for metric in missing:
        split, which = metric_target(config.metrics[metric])
        record["metrics"][metric] = top1_percent(train_cfg, split_kwargs, split, cell_dir, which)
        record.setdefault("posthoc_metrics", []).append(metric)
        log(f"  {cell['name']}: {metric} = {record['metrics'][metric]:.1f} (evaluated on the "
            f"finished cell's {which} checkpoint, split {split!r})")
    if ev_missing:
        ev_mod, ev = chosen
        merge_evaluation(record, ev_mod.evaluate(train_cfg, str(cell_dir), ev, ev_missing))
        record.setdefault("posthoc_metrics", []).extend(ev_mod.metric_names(ev_missing, ev))
        log(f"  {cell['name']}: {ev.kind} metrics of the {', '.join(ev_missing)} parameters "
            f"evaluated on the finished cell's checkpoints")
    write_cell(cell_dir, record, read_cell(cell_dir).get(CELL_CONFIG))
    return record
