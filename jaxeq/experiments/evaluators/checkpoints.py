"""A finished cell's trained model, and its top-1 on a split.

``which='best'``: the best-validation checkpoint (the latest when the run had no validation
split, hence no 'best'; a run that validated but left no 'best' is an error, never a quiet
fallback); ``'final'``: the parameters after the last epoch. :func:`load_trained_params` also
says which of these it loaded, for the evaluator's record.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import ml_collections

from jaxeq import xla_options
from jaxeq._checks import choice
from jaxeq.experiments.grid import recorded_settings
from jaxeq.experiments.sources import split_source

FINAL = "final"  # the parameters after the last epoch (checkpoint 'latest'); else best-val


def metric_target(spec: str) -> tuple[str, str]:
    """``"val"`` -> ("val", "best"); ``"val@final"`` -> ("val", "final")."""
    split, sep, which = str(spec).partition("@")
    if sep and which != FINAL:
        raise ValueError(f"metric split {spec!r}: the part after '@' must be {FINAL!r}")
    return split, (FINAL if sep else "best")


def model_suffix(which: str) -> str:
    """The metric name suffix of a model: '' for 'best', '_final' for 'final'."""
    return "" if which == "best" else "_" + which


def _variables(train_cfg, cell_dir: str, which: str) -> tuple[dict, str]:
    """(:func:`jaxeq.train.load_variables` of ``which``, what to call those parameters)."""
    from jaxeq.train import load_variables
    from jaxeq.train.loop import NO_VAL_PARAMS

    if which == FINAL:
        return load_variables(cell_dir, "latest"), FINAL
    try:
        return load_variables(cell_dir, "best"), "best"
    except FileNotFoundError:
        val_split = train_cfg.data.get("val_split")
        if val_split is not None:
            raise FileNotFoundError(
                f"{cell_dir}: no 'best' checkpoint although the run validates on "
                f"{val_split!r}; evaluate which={FINAL!r} or retrain the cell") from None
    return load_variables(cell_dir, "latest"), NO_VAL_PARAMS


def load_trained_params(train_cfg, cell_dir: str | Path, which: str = "best"):
    """(model, variables, params) of a finished cell trained with ``train_cfg``: ``params``
    says which parameters were loaded: 'best', 'final', or 'last (no validation split)'
    (``jaxeq.train.loop.NO_VAL_PARAMS``). The model computes in the run's ``dtype``, as in
    training."""
    import jax.numpy as jnp

    from jaxeq import models

    choice("which", which, ("best", FINAL))
    v, params = _variables(train_cfg, str(cell_dir), which)
    variables = {"params": v["params"]}
    if v.get("batch_stats"):
        variables["batch_stats"] = v["batch_stats"]
    kwargs = dict(train_cfg.model.kwargs)
    if train_cfg.get("dtype", "float32") == "bfloat16":
        kwargs.setdefault("dtype", jnp.bfloat16)
    return models.get(train_cfg.model.name, **kwargs), variables, params


def load_trained(train_cfg, cell_dir: str | Path, which: str = "best"):
    """(model, variables) of :func:`load_trained_params`."""
    model, variables, _ = load_trained_params(train_cfg, cell_dir, which)
    return model, variables


def load_trained_cell(cell_dir: str | Path, which: str = "best"):
    """(model, variables) of a finished cell, built from the train config its folder records."""
    rec = recorded_settings(Path(cell_dir))
    if rec is None:
        raise FileNotFoundError(f"{cell_dir} records no train config (no cell.json or config.json)")
    return load_trained(ml_collections.ConfigDict(json.loads(json.dumps(rec["train"]))), cell_dir, which)


def top1_percent(train_cfg, split_kwargs: Mapping, split: str, cell_dir: Path, which: str) -> float:
    """Top-1 (%) of a finished cell's ``which`` parameters ('best' or 'final') on ``split``."""
    import numpy as np

    from jaxeq.data import to_model_input

    model, variables = load_trained(train_cfg, cell_dir, which)
    apply = xla_options.jit(lambda v, x: model.apply(v, to_model_input(x), train=False))
    src = split_source(train_cfg, split, split_kwargs.get(split, {}))
    correct, bs = 0, int(train_cfg.eval_batch_size or train_cfg.batch_size)
    for start in range(0, len(src), bs):
        items = [src[i] for i in range(start, min(start + bs, len(src)))]
        logits = apply(variables, np.stack([it["image"] for it in items]))
        correct += int(np.sum(np.argmax(np.asarray(logits), -1) ==
                              np.array([it["label"] for it in items])))
    return 100.0 * correct / len(src)
