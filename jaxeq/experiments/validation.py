"""Everything checked before the first cell trains: each cell's settings, and each cell already
in the workdir against them (the cache is reused only for the same settings)."""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import ml_collections

from jaxeq.experiments.grid import (CELL_FILE, cell_dir, cell_run_settings, cells, identity_json,
                                    recorded_settings)
from jaxeq.experiments.evaluators import evaluator, metric_target

_MODELS_CHECKED: set = set()  # (name, kwargs, dtype, trainable, optimizer) already traced


def one_line(err: BaseException) -> str:
    """``TypeName: first line of the message``."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def _check_model(train_cfg) -> None:
    """Build the model by name and trace its init with ``jax.eval_shape`` on the registry's
    example input (shapes only, nothing compiled), then the trainable split and optimizer."""
    import jax
    import jax.numpy as jnp

    from jaxeq import models
    from jaxeq.train import optim

    key = json.dumps([train_cfg.model.name, train_cfg.model.to_dict()["kwargs"], train_cfg.dtype,
                      train_cfg.trainable, train_cfg.optimizer.to_dict()], sort_keys=True, default=str)
    if key in _MODELS_CHECKED:
        return
    if train_cfg.model.name not in models.names():
        raise ValueError(f"model.name={train_cfg.model.name!r} is not one of {models.names()}")
    kwargs = dict(train_cfg.model.kwargs)
    if train_cfg.dtype == "bfloat16":
        kwargs.setdefault("dtype", jnp.bfloat16)
    model = models.get(train_cfg.model.name, **kwargs)
    shape = models.example_input_shape(train_cfg.model.name)
    shapes = jax.eval_shape(lambda k: model.init(k, jnp.zeros(shape, jnp.float32), train=False),
                            jax.ShapeDtypeStruct((2,), jnp.uint32))
    if train_cfg.trainable == "head":
        optim.trainable_labels(shapes["params"], "head")
    optim.make_optimizer(train_cfg.optimizer, shapes["params"], train_cfg.trainable)
    _MODELS_CHECKED.add(key)


def validate_cells(config: ml_collections.ConfigDict, all_cells: Sequence[Mapping] | None = None) -> dict:
    """Check every cell's full settings before anything trains or any folder is created.

    Per cell: its train config (axis definitions and overrides applied) through
    :func:`jaxeq.train.config.validate`, the data name against :func:`jaxeq.data.names`, the
    model built by name with its kwargs and initialised abstractly (``jax.eval_shape`` on the
    registry's example input), the optimizer, the pretrained weights file of a pretrained_frozen
    cell, the metric specs and the evaluator kind. Returns ``{cell name: (train_config,
    split_kwargs)}``; raises a one-line ValueError naming the first bad cell.
    """
    from jaxeq import data
    from jaxeq.train import config as cfg_lib

    all_cells = cells(config) if all_cells is None else all_cells
    for spec in dict(config.get("metrics", {}) or {}).values():
        metric_target(spec)
    evaluator(config)
    out = {}
    for cell in all_cells:
        try:
            train_cfg, split_kwargs = cell_run_settings(config, cell["cell"])
            cfg_lib.validate(train_cfg)
            if train_cfg.data.name not in data.names():
                raise ValueError(f"data.name={train_cfg.data.name!r} is not one of {data.names()}")
            if train_cfg.init_weights and not os.path.isfile(os.path.expanduser(str(train_cfg.init_weights))):
                raise ValueError(f"init_weights={train_cfg.init_weights!r} is not a file")
            _check_model(train_cfg)
        except Exception as e:  # noqa: BLE001 - any failure here is this cell's configuration error
            raise ValueError(f"{config.experiment} cell {cell['name']!r}: bad config, nothing was "
                             f"run ({one_line(e)})") from e
        out[cell["name"]] = (train_cfg, split_kwargs)
    return out


def config_diff(recorded: Mapping, now: Mapping) -> dict:
    """``{dotted key: (recorded, now)}`` of two JSON train configs, compared as the trainer
    compares a workdir's config (:func:`jaxeq.train.config.identity_diff`)."""
    from jaxeq.train import config as cfg_lib

    return cfg_lib.identity_diff(dict(recorded), dict(now))


def _settings_diff(recorded: Mapping, now: Mapping) -> dict:
    """:func:`config_diff` of the train configs plus the split kwargs (when recorded)."""
    diff = config_diff(recorded["train"], now["train"])
    if "split_kwargs" in recorded:  # not in the trainer's config.json
        from jaxeq.train.config import flatten_dotted

        a, b = flatten_dotted(recorded["split_kwargs"]), flatten_dotted(now["split_kwargs"])
        diff.update({f"split_kwargs.{k}": (a.get(k, "<missing>"), b.get(k, "<missing>"))
                     for k in sorted(set(a) | set(b)) if a.get(k, "<missing>") != b.get(k, "<missing>")})
    return diff


def stale_cells(config: ml_collections.ConfigDict, workdir: Path, settings: Mapping) -> list[tuple[str, str]]:
    """``[(cell name, why)]`` for every cell whose folder holds a run (finished, or a trainer
    record) of settings other than this run's (or of unknown settings)."""
    out = []
    for name, (train_cfg, split_kwargs) in settings.items():
        subdir = cell_dir(workdir, name)
        if not (subdir / CELL_FILE).is_file() and not (subdir / "config.json").is_file():
            continue  # nothing recorded: a new cell (or one that never got past its checks)
        recorded = recorded_settings(subdir)
        if recorded is None:
            out.append((name, "no config recorded: neither its cell.json nor a trainer config.json"))
            continue
        diff = _settings_diff(recorded, identity_json(train_cfg, split_kwargs))
        if diff:
            first = ("model.name", "data.name", "epochs")  # the telling ones first
            keys = sorted(diff, key=lambda k: (first.index(k) if k in first else len(first), k))
            shown = ", ".join(f"{k}: {diff[k][0]!r} recorded vs {diff[k][1]!r} now" for k in keys[:4])
            more = f" (+{len(diff) - 4} more)" if len(diff) > 4 else ""
            other = recorded.get("experiment")
            by = f"it was made by a {other} run; " if other and other != config.experiment else ""
            out.append((name, f"{by}its config differs in {shown}{more}"))
    return out


def prepare(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, force: bool = False) -> dict:
    """Everything checked before the first cell trains (no folder created): every cell's
    settings (:func:`validate_cells`) and every cell already in ``workdir`` against them. A cell
    recorded with other settings is refused (ValueError) unless ``force``; returns
    ``{"settings": ..., "stale": [(cell name, why)]}``."""
    if config.get("runner"):  # an experiment with its own loop checks its own cells
        return importlib.import_module(config.runner).prepare(config, workdir, force=force)
    workdir = Path(workdir)
    settings = validate_cells(config)
    stale = stale_cells(config, workdir, settings)
    if stale and not force:
        name, why = stale[0]
        others = f"; {len(stale) - 1} other cell(s) too: {', '.join(n for n, _ in stale[1:4])}" \
            f"{', ...' if len(stale) > 4 else ''}" if len(stale) > 1 else ""
        raise ValueError(f"workdir {str(workdir)!r}: cell {name!r} was run with other settings than "
                         f"this {config.experiment} run ({why}){others}. Use a new --workdir, or "
                         f"--force to retrain the mismatching cells (their old results are deleted)")
    return {"settings": settings, "stale": stale}
