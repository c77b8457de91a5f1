"""``jaxeq run experiments/<name>.py[:variant] --workdir DIR [--config.key=value ...]``.

Runs every cell of an experiment's table (padding variants x archs x inits x borders x images per
class x seeds), each in its own sub-workdir through :func:`jaxeq.train.fit`, skips cells that
already finished (so an interrupted run is resumed by running the same command again), and writes
into ``DIR``: ``results.json`` (every cell's numbers, the config, the hardware), ``results.md``
(our numbers beside the paper's, in the paper's layout) and PNG plots (:mod:`jaxeq.report`).

An experiment config (``get_config(arg) -> ConfigDict``) holds:

- ``experiment``: one of :data:`jaxeq.report.EXPERIMENTS` (selects the table layout);
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
- ``eval`` (shift robustness only): the diagonal-shift / consistency evaluation;
  ``eval.models``: which parameters it runs on, ``best`` (best validation, metric names as is)
  and/or ``final`` (after the last epoch, names with ``_final``).
"""
from __future__ import annotations

import argparse
import ast
import copy
import importlib.util
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import ml_collections

from jaxeq import report

# axis (config field) -> coordinate name in a cell
AXES = (("variants", "variant"), ("archs", "arch"), ("inits", "init"), ("borders", "border"),
        ("images_per_class", "images_per_class"), ("seeds", "seed"))
DEFAULT_TARGETS = {"archs": "model.name", "borders": "data.kwargs.border",
                   "images_per_class": "data.kwargs.images_per_class", "seeds": "seed"}
# short prefixes for numeric coordinates in sub-workdir names
_DIR_PREFIX = {"border": "border", "images_per_class": "ipc", "seed": "seed"}
CELL_FILE = "cell.json"
CELL_CONFIG = "config"  # cell.json key: the cell's recorded train config and split kwargs


# ----------------------------------------------------------------------------- config loading
def experiment_config(name: str, variant: str | None, title: str,
                      variants: Sequence[str] = ("quick", "full"),
                      default: str = "full") -> ml_collections.ConfigDict:
    """The common head of every ``experiments/<name>.py`` config: name, checked variant (default
    ``default``), title, and ``train`` = :func:`jaxeq.train.default_config` to fill in."""
    from jaxeq.train import default_config

    variant = variant or default
    if variant not in variants:
        raise ValueError(f"{name} variant must be one of {tuple(variants)}, got {variant!r}")
    c = ml_collections.ConfigDict()
    c.experiment = name
    c.variant = variant
    c.title = title
    c.train = default_config()
    return c


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Load ``path.py[:variant]`` (calls its ``get_config(variant)``) and apply ``--config.k=v``."""
    path, _, variant = spec.partition(":")
    if not path.endswith(".py") or not os.path.isfile(path):
        raise ValueError(f"config must be an existing experiments/<name>.py[:variant] file, got {spec!r}")
    name = "jaxeq_experiment_" + Path(path).stem
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} has no get_config(arg) function")
    config = module.get_config(variant or None)
    if not isinstance(config, ml_collections.ConfigDict):
        raise TypeError(f"{path}:get_config must return an ml_collections.ConfigDict, got {type(config)}")
    with config.unlocked():
        config.config_path = str(Path(path).resolve())
    apply_overrides(config, overrides)
    with config.unlocked():
        config.overrides = tuple(str(o) for o in overrides)  # for results.md / results.json
    return config


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word is a string


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    """Apply ``--config.a.b=value`` (or ``config.a.b=value``) strings; values are Python literals.

    A key must already exist (typos fail loudly), except inside a ``kwargs`` or ``*_defs`` dict.
    """
    for item in overrides:
        key, sep, text = item.removeprefix("--").partition("=")
        if not sep or not key.startswith("config."):
            raise ValueError(f"override must look like --config.key=value, got {item!r}")
        parts = key.split(".")[1:]
        node = config
        for p in parts[:-1]:
            if p not in node:
                raise ValueError(f"unknown config key {key!r} (no field {p!r})")
            node = node[p]
        leaf, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
        if leaf not in node and not (parent.endswith("kwargs") or parent.endswith("_defs")):
            raise ValueError(f"unknown config key {key!r}; existing keys here: {sorted(node.keys())}")
        value = _parse_value(text)
        if isinstance(node, ml_collections.ConfigDict):
            with node.unlocked():
                node[leaf] = value  # ConfigDict still type-checks existing fields
        else:
            node[leaf] = value


# ----------------------------------------------------------------------------- cells
def cells(config: Mapping) -> list[dict]:
    """Every cell of the experiment's table: ``[{"name": "same_zero/seed0", "cell": {...}}]``."""
    axes = [(field, coord, list(config[field])) for field, coord in AXES
            if field in config and config[field] is not None]
    for field, _, values in axes:
        if not values:
            raise ValueError(f"config.{field} is empty: nothing to run")
    out = []
    for combo in itertools.product(*[values for _, _, values in axes]):
        coords = {coord: v for (_, coord, _), v in zip(axes, combo)}
        name = "/".join(f"{_DIR_PREFIX[c]}{v}" if c in _DIR_PREFIX else str(v) for c, v in coords.items())
        out.append({"name": name, "cell": coords})
    return out


def _set_dotted(cfg: ml_collections.ConfigDict, path: str, value) -> None:
    parts = path.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node[p]
    try:
        node[parts[-1]] = value
    except TypeError:  # an axis may mix types (images_per_class: "all" or 500): replace the field
        del node[parts[-1]]
        node[parts[-1]] = value


_DICTS = (Mapping, ml_collections.ConfigDict)  # a ConfigDict is not a collections.abc.Mapping


def _merge(cfg: ml_collections.ConfigDict, updates) -> None:
    for k, v in updates.items():
        if isinstance(v, _DICTS) and k in cfg and isinstance(cfg[k], _DICTS):
            _merge(cfg[k], v)
        else:
            cfg[k] = v.to_dict() if isinstance(v, ml_collections.ConfigDict) else v


def cell_settings(config: ml_collections.ConfigDict, coords: Mapping):
    """``(train_config, split_kwargs)`` of a cell.

    ``train_config`` is ``config.train`` with the cell's axis definitions and values applied.
    ``split_kwargs`` maps a split to extra data kwargs for that split only (e.g. E4a's images per
    class apply to the training split, never to the validation set): definitions and targets
    under ``split_kwargs.<split>`` go there instead of into the train config.
    """
    cfg = copy.deepcopy(config.train)
    side = ml_collections.ConfigDict({"split_kwargs": {}})
    targets = dict(DEFAULT_TARGETS)
    targets.update(dict(config.get("targets", {}) or {}))
    for field, coord in AXES:
        if coord not in coords:
            continue
        value = coords[coord]
        defs = config.get(coord + "_defs")
        if defs is not None and str(value) in defs:
            d = dict(defs[str(value)])
            if "split_kwargs" in d:
                _merge(side, {"split_kwargs": d.pop("split_kwargs")})
            _merge(cfg, d)
        elif defs is not None and field in ("variants", "inits"):
            raise ValueError(f"{coord} {value!r} has no entry in config.{coord}_defs "
                             f"(known: {sorted(defs.keys())})")
        target = targets.get(field)
        if target and target.startswith("split_kwargs."):
            _, split, key = target.split(".", 2)
            with side.unlocked():
                side.split_kwargs.setdefault(split, ml_collections.ConfigDict())
            _set_dotted(side.split_kwargs[split], key, value)
        elif target:
            _set_dotted(cfg, target, value)
    return cfg, {k: dict(v) for k, v in side.split_kwargs.items()}


def cell_train_config(config: ml_collections.ConfigDict, coords: Mapping) -> ml_collections.ConfigDict:
    """``config.train`` with the cell's axis definitions and values applied."""
    return cell_settings(config, coords)[0]


def _pretrained_path(config, coords) -> str:
    """The local weights file for a pretrained_frozen cell (a clear error when missing)."""
    arch = coords.get("arch", config.train.model.name)
    path = dict(config.get("pretrained", {}) or {}).get(arch, "")
    if not path:
        raise ValueError(f"init 'pretrained_frozen' needs ImageNet weights for {arch}: pass "
                         f"--config.pretrained.{arch}=/path/to/weights.pth (or .npz), or leave "
                         f"pretrained_frozen out with --config.inits='(\"scratch\", \"random_frozen\")'")
    return str(path)


def _sources(cfg, split_kwargs: Mapping, workdir: Path) -> dict | None:
    """Data sources with per-split kwargs (None when every split uses ``data.kwargs``)."""
    if not split_kwargs:
        return None
    from jaxeq import data

    d = cfg.data
    splits = [d.train_split] + ([d.val_split] if d.val_split else []) + list(d.test_splits)
    out = {}
    for s in dict.fromkeys(splits):
        kw = dict(d.kwargs)
        kw.update(split_kwargs.get(s, {}))
        if d.name in ("imagenet", "imagenet_a200") and "per_class" in kw:
            kw.setdefault("workdir", str(workdir))  # the chosen image indices are recorded there
        out[s] = data.get(d.name, split=s, seed=_data_seed(cfg), **kw)
    return out


def _data_seed(cfg) -> int:
    from jaxeq.train.config import data_seed
    return data_seed(cfg)


# ----------------------------------------------------------------------------- metrics
FINAL = "final"  # the parameters after the last epoch (checkpoint 'latest'); else best-val


def metric_target(spec: str) -> tuple[str, str]:
    """``"val"`` -> ("val", "best"); ``"val@final"`` -> ("val", "final")."""
    split, sep, which = str(spec).partition("@")
    if sep and which != FINAL:
        raise ValueError(f"metric split {spec!r}: the part after '@' must be {FINAL!r}")
    return split, (FINAL if sep else "best")


def _model_suffix(which: str) -> str:
    return "" if which == "best" else "_" + which


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
    metrics = {m: _accuracy_percent(results, split) for m, split in metric_splits.items()
                if metric_target(split)[1] == "best"}
    metrics.update(extra or {})
    return {"name": name, "cell": dict(coords), "metrics": metrics,
            "epochs": results.get("epochs_run", results.get("epochs")), "wall_s": round(wall_s, 2)}


# ----------------------------------------------------------------------------- running
def hardware() -> dict:
    import jax

    d = jax.devices()[0]
    return {"platform": d.platform, "device_kind": getattr(d, "device_kind", "?"),
            "device_count": jax.device_count(), "process_count": jax.process_count(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def _top1_percent(train_cfg, split_kwargs: Mapping, split: str, subdir: Path, which: str) -> float:
    """Top-1 (%) of a finished cell's ``which`` parameters ('best' or 'final') on ``split``."""
    import jax
    import numpy as np

    from jaxeq import data
    from jaxeq.train._batching import to_model_input

    model, variables = _load_trained(train_cfg, str(subdir), which)
    apply = jax.jit(lambda v, x: model.apply(v, to_model_input(x), train=False))
    kw = dict(train_cfg.data.kwargs)
    kw.update(split_kwargs.get(split, {}))
    src = data.get(train_cfg.data.name, split=split, seed=_data_seed(train_cfg), **kw)
    correct, bs = 0, int(train_cfg.eval_batch_size or train_cfg.batch_size)
    for start in range(0, len(src), bs):
        items = [src[i] for i in range(start, min(start + bs, len(src)))]
        logits = apply(variables, np.stack([it["image"] for it in items]))
        correct += int(np.sum(np.argmax(np.asarray(logits), -1) ==
                              np.array([it["label"] for it in items])))
    return 100.0 * correct / len(src)


def _final_metrics(config, train_cfg, split_kwargs, subdir: Path, names) -> dict:
    """The ``<split>@final`` metrics among ``names``, on the cell's last-epoch parameters."""
    out = {}
    for metric in names:
        split, which = metric_target(config.metrics[metric])
        if which == FINAL:
            out[metric] = _top1_percent(train_cfg, split_kwargs, split, subdir, which)
    return out


def _shift_eval_models(config) -> tuple[str, ...]:
    ev = config.get("eval")
    if ev is None or ev.get("kind") != "shift_robustness":
        return ()
    return tuple(ev.get("models", ("best",)) or ("best",))


def add_missing_metrics(config: ml_collections.ConfigDict, cell: Mapping, record: dict,
                        subdir: Path, *, log: Callable[[str], None] = print) -> dict:
    """A finished cell's record, plus the metrics the config now asks for that it lacks.

    Metrics added to a config after its cells ran are evaluated on the cell's checkpoints (the
    best-validation one, or the last epoch's for ``<split>@final`` and ``eval.models`` 'final'),
    never by retraining; they are listed under ``posthoc_metrics`` in the record and
    ``cell.json`` is rewritten.
    """
    have = record.get("metrics", {})
    missing = [m for m in dict(config.get("metrics", {}) or {}) if m not in have]
    shift_missing = tuple(w for w in _shift_eval_models(config)
                          if "consistency" + _model_suffix(w) not in have)
    if not missing and not shift_missing:
        return record
    train_cfg, split_kwargs = cell_settings(config, cell["cell"])
    for metric in missing:
        split, which = metric_target(config.metrics[metric])
        record["metrics"][metric] = _top1_percent(train_cfg, split_kwargs, split, subdir, which)
        record.setdefault("posthoc_metrics", []).append(metric)
        log(f"  {cell['name']}: {metric} = {record['metrics'][metric]:.1f} (evaluated on the "
            f"finished cell's {which} checkpoint, split {split!r})")
    if shift_missing:
        extra = evaluate_shift_robustness(train_cfg, str(subdir), config.eval, models=shift_missing)
        record["metrics"].update(extra)
        record.setdefault("posthoc_metrics", []).extend(
            f"{m}{_model_suffix(w)}" for w in shift_missing for m in ("diagonal", "consistency"))
        log(f"  {cell['name']}: shift metrics of the {', '.join(shift_missing)} parameters "
            f"evaluated on the finished cell's checkpoints")
    _write_cell(subdir, record, _read_cell(subdir).get(CELL_CONFIG))
    return record


def _read_cell(subdir: Path) -> dict:
    path = subdir / CELL_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_cell(subdir: Path, record: Mapping, recorded_config: Mapping | None) -> None:
    """``cell.json``: the record plus (under ``config``) the train config and split kwargs it was
    made with; written atomically: a cell is finished only once its record is complete."""
    out = dict(record)
    if recorded_config is not None:
        out[CELL_CONFIG] = recorded_config
    tmp = subdir / (CELL_FILE + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(subdir / CELL_FILE)


def cell_run_settings(config: ml_collections.ConfigDict, coords: Mapping):
    """``(train_config, split_kwargs)`` exactly as the cell is trained (:func:`cell_settings`
    plus the weights file of a pretrained_frozen cell)."""
    train_cfg, split_kwargs = cell_settings(config, coords)
    if coords.get("init") == "pretrained_frozen":
        train_cfg.init_weights = _pretrained_path(config, coords)
    return train_cfg, split_kwargs


def _identity_json(train_cfg, split_kwargs: Mapping) -> dict:
    """What a cell records about its settings: the validated train config (as the trainer
    writes it to config.json) and the split kwargs, as JSON."""
    from jaxeq.train import config as cfg_lib

    return {"train": json.loads(cfg_lib.to_json(cfg_lib.validate(train_cfg))),
            "split_kwargs": json.loads(json.dumps(split_kwargs, sort_keys=True, default=str))}


def run_cell(config: ml_collections.ConfigDict, cell: Mapping, workdir: Path, *,
             fit: Callable | None = None, log: Callable[[str], None] = print) -> dict:
    """Train (or resume, or load) one cell; returns its record (also saved as ``cell.json``)."""
    subdir = workdir / "cells" / cell["name"]
    done = subdir / CELL_FILE
    if done.is_file():
        record = _read_cell(subdir)
        record.pop(CELL_CONFIG, None)
        return add_missing_metrics(config, cell, record, subdir, log=log)
    subdir.mkdir(parents=True, exist_ok=True)
    train_cfg, split_kwargs = cell_run_settings(config, cell["cell"])
    if fit is None:
        from jaxeq.train import fit
    t0 = time.perf_counter()
    sources = _sources(train_cfg, split_kwargs, subdir)
    results = fit(train_cfg, str(subdir)) if sources is None else fit(train_cfg, str(subdir), sources=sources)
    extra = _final_metrics(config, train_cfg, split_kwargs, subdir, dict(config.metrics))
    if _shift_eval_models(config):
        extra.update(evaluate_shift_robustness(train_cfg, str(subdir), config.eval,
                                               models=_shift_eval_models(config)))
    record = record_from_results(cell["name"], cell["cell"], results, dict(config.metrics),
                                 time.perf_counter() - t0, extra)
    _write_cell(subdir, record, {"experiment": config.experiment, **_identity_json(train_cfg, split_kwargs)})
    return record


def write_outputs(config: ml_collections.ConfigDict, records: Sequence[Mapping], workdir: Path, *,
                  wall_s: float | None = None, paper: Mapping | None = None) -> dict:
    """results.json, results.md and the plots for the records so far."""
    workdir.mkdir(parents=True, exist_ok=True)
    if paper is None:
        path = Path(config.get("config_path", "")).parent / "paper_results.json"
        paper = report.load_paper_results(path if path.is_file() else None)
    cfg = config.to_dict()
    changes = _config_changes(config)
    notes = list(config.get("notes", ()) or ()) + [overrides_note(config, changes)]
    md = report.results_markdown(config.experiment, records, cfg, paper,
                                 title=config.get("title"), notes=notes)
    (workdir / "results.md").write_text(md)
    plots = report.plot(config.experiment, records, cfg, paper, workdir)
    summary = {"experiment": config.experiment, "variant": config.get("variant"),
               "wall_s": wall_s, "hardware": hardware(), "records": list(records),
               "plots": [str(p) for p in plots],
               "overrides": list(config.get("overrides", ()) or ()),
               "changed_from_file": {k: [a, b] for k, (a, b) in changes.items()},
               "config": json.loads(config.to_json_best_effort())}
    (workdir / "results.json").write_text(json.dumps(summary, indent=1))
    return {"markdown": md, "plots": plots, "results": workdir / "results.json"}


def _one_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


_MODELS_CHECKED: set = set()  # (name, kwargs, dtype, trainable, optimizer) already traced


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
    cell, and the metric specs. Returns ``{cell name: (train_config, split_kwargs)}``; raises a
    one-line ValueError naming the first bad cell.
    """
    from jaxeq import data
    from jaxeq.train import config as cfg_lib

    all_cells = cells(config) if all_cells is None else all_cells
    for metric, spec in dict(config.get("metrics", {}) or {}).items():
        metric_target(spec)
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
                             f"run ({_one_line(e)})") from e
        out[cell["name"]] = (train_cfg, split_kwargs)
    return out


def config_diff(recorded: Mapping, now: Mapping) -> dict:
    """``{dotted key: (recorded, now)}`` of two JSON train configs, compared as the trainer
    compares a workdir's config (:func:`jaxeq.train.config.identity_diff`)."""
    from jaxeq.train import config as cfg_lib

    return cfg_lib.identity_diff(dict(recorded), dict(now))


def _recorded_settings(subdir: Path) -> dict | None:
    """What a cell's folder records of its settings: cell.json's ``config`` (train config and
    split kwargs), else the trainer's config.json (train config only: older workdirs, or a cell
    interrupted mid-training), else None."""
    rec = _read_cell(subdir).get(CELL_CONFIG)
    if rec is not None:
        return rec
    path = subdir / "config.json"
    if path.is_file():
        return {"train": json.loads(path.read_text())}
    return None


def stale_cells(config: ml_collections.ConfigDict, workdir: Path, settings: Mapping) -> list[tuple[str, str]]:
    """``[(cell name, why)]`` for every cell whose folder holds a run (finished, or a trainer
    record) of settings other than this run's (or of unknown settings)."""
    out = []
    for name, (train_cfg, split_kwargs) in settings.items():
        subdir = workdir / "cells" / name
        if not (subdir / CELL_FILE).is_file() and not (subdir / "config.json").is_file():
            continue  # nothing recorded: a new cell (or one that never got past its checks)
        recorded = _recorded_settings(subdir)
        if recorded is None:
            out.append((name, "no config recorded: neither its cell.json nor a trainer config.json"))
            continue
        now = _identity_json(train_cfg, split_kwargs)
        diff = config_diff(recorded["train"], now["train"])
        if "split_kwargs" in recorded:  # not in the trainer's config.json
            from jaxeq.train.config import flatten_dotted

            a, b = flatten_dotted(recorded["split_kwargs"]), flatten_dotted(now["split_kwargs"])
            diff.update({f"split_kwargs.{k}": (a.get(k, "<missing>"), b.get(k, "<missing>"))
                         for k in sorted(set(a) | set(b)) if a.get(k, "<missing>") != b.get(k, "<missing>")})
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


def _config_changes(config: ml_collections.ConfigDict) -> dict:
    """``{dotted key: (file's value, this run's)}``: the config against its file's defaults."""
    path = config.get("config_path")
    if not path or not os.path.isfile(path):
        return {}
    try:
        base = load_config(f"{path}:{config.get('variant') or ''}".rstrip(":"))
    except Exception:  # noqa: BLE001 - the note is best effort; the override strings remain
        return {}
    skip = ("config_path", "overrides")
    from jaxeq.train.config import flatten_dotted

    a = flatten_dotted({k: v for k, v in json.loads(base.to_json_best_effort()).items() if k not in skip})
    b = flatten_dotted({k: v for k, v in json.loads(config.to_json_best_effort()).items() if k not in skip})
    return {k: (a.get(k, "<unset>"), b.get(k, "<unset>")) for k in sorted(set(a) | set(b))
            if a.get(k, "<unset>") != b.get(k, "<unset>")}


def overrides_note(config: ml_collections.ConfigDict, changes: Mapping | None = None) -> str:
    """The results.md line saying which settings this run changed from the experiment file."""
    changes = _config_changes(config) if changes is None else changes
    where = f"{Path(str(config.get('config_path', 'the experiment file'))).name}" \
            f"{':' + config.variant if config.get('variant') else ''}"
    strings = list(config.get("overrides", ()) or ())
    if not strings and not changes:
        return f"Settings: exactly {where} (no overrides)."
    text = f"Overrides of {where}: " + (" ".join(f"`{o}`" for o in strings) if strings else "(set in Python)")
    if not changes:
        return text + " (no change to the file's settings)."
    if set(changes) == {"variants"} and set(changes["variants"][1]) <= set(changes["variants"][0]):
        # Dropping rows changes which rows appear, not how any row was made.
        return text + f" (a subset of the file's variants, {list(changes['variants'][0])}: " \
            "every row shown follows the file's protocol)."
    return text + " (differs from the file in " + ", ".join(
        f"{k}: {a} -> {b}" for k, (a, b) in list(changes.items())[:12]) + \
        (f", +{len(changes) - 12} more" if len(changes) > 12 else "") + \
        "): not the file's protocol, so not a like-for-like reproduction."


def run(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, fit: Callable | None = None,
        log: Callable[[str], None] = print, force: bool = False) -> dict:
    """Run every cell (skipping finished ones) and write the experiment's outputs.

    Before anything trains: every cell's settings are validated (:func:`validate_cells`) and a
    cell already in ``workdir`` is reused only if its recorded settings match this run's;
    otherwise a ValueError, or with ``force`` the mismatching cells are deleted and retrained.
    """
    import shutil

    workdir = Path(workdir)
    all_cells = cells(config)
    plan = prepare(config, workdir, force=force)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, why in plan["stale"]:
        log(f"--force: retraining {name} ({why}); its old folder is deleted")
        shutil.rmtree(workdir / "cells" / name)
    t0 = time.perf_counter()
    records = []
    for i, cell in enumerate(all_cells, 1):
        tc = time.perf_counter()
        cached = (workdir / "cells" / cell["name"] / CELL_FILE).is_file()
        rec = run_cell(config, cell, workdir, fit=fit, log=log)
        records.append(rec)
        shown = ", ".join(f"{k} {v:.1f}" for k, v in rec["metrics"].items() if isinstance(v, (int, float)))
        log(f"[{i}/{len(all_cells)}] {config.experiment} {cell['name']}: {shown}"
            f" ({'cached' if cached else f'{time.perf_counter() - tc:.1f} s'})")
    out = write_outputs(config, records, workdir, wall_s=round(time.perf_counter() - t0, 1))
    out["records"] = records
    return out


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiments/<name>.py[:variant] (variant e.g. quick; default: full protocol)")
    parser.add_argument("--workdir", required=True, help="output folder (re-run the same command to resume)")
    parser.add_argument("--force", action="store_true",
                        help="retrain (deleting their old results) the cells of --workdir whose "
                             "recorded config differs from this run's; without it such a run is refused")
    parser.epilog = "Override any config field with --config.key=value (Python literal), e.g. --config.seeds='(0,1)'."
    # argparse cannot declare `--config.<anything>`: pull those out before it parses the rest
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        overrides, rest, i = [], [], 0
        while i < len(args):
            a = args[i]
            if a.startswith("--config."):
                if "=" not in a and i + 1 < len(args):
                    a, i = f"{a}={args[i + 1]}", i + 1
                overrides.append(a)
            else:
                rest.append(a)
            i += 1
        ns, extra = original(rest, namespace)
        ns.config_overrides = overrides
        return ns, extra

    parser.parse_known_args = parse_known_args


def main(args: argparse.Namespace) -> int:
    from jaxeq import xla_env

    config = load_config(args.config, getattr(args, "config_overrides", []))
    force = bool(getattr(args, "force", False))
    prepare(config, args.workdir, force=force)  # every check before the cache folder is made
    xla_env.enable_compilation_cache(Path(args.workdir) / ".xla_cache")
    out = run(config, args.workdir, force=force)
    print()
    print(out["markdown"])
    print(f"results: {out['results']}")
    for p in out["plots"]:
        print(f"plot: {p}")
    return 0


# ----------------------------------------------------------------------------- E3 evaluation
def _load_trained(train_cfg, workdir: str, which: str = "best"):
    """(model, variables) of a finished cell: ``which='best'``: the best-validation checkpoint
    (the latest when the run had no validation split, hence no 'best'); ``'final'``: the
    parameters after the last epoch. The model computes in the run's ``dtype``, as in training.
    """
    import jax.numpy as jnp

    from jaxeq import models
    from jaxeq.train.checkpoint import load_variables

    if which not in ("best", FINAL):
        raise ValueError(f"which must be 'best' or {FINAL!r}, got {which!r}")
    if which == "best":
        try:
            v = load_variables(workdir, "best")
        except FileNotFoundError:
            v = load_variables(workdir, "latest")
    else:
        v = load_variables(workdir, "latest")
    variables = {"params": v["params"]}
    if v.get("batch_stats"):
        variables["batch_stats"] = v["batch_stats"]
    kwargs = dict(train_cfg.model.kwargs)
    if train_cfg.get("dtype", "float32") == "bfloat16":
        kwargs.setdefault("dtype", jnp.bfloat16)
    return models.get(train_cfg.model.name, **kwargs), variables


def evaluate_shift_robustness(train_cfg, workdir: str, ev, models: Sequence[str] = ("best",)) -> dict:
    """SPEC E3 on a trained cell: diagonal-shift top-1 (mean and per offset) and crop consistency
    of each of ``models`` ('best': best-validation parameters, metric names as is; 'final': the
    last epoch's, names suffixed ``_final``).

    Images come from ``ev.split`` with ``ev.data_kwargs`` (E3: resize 288, center-crop 288) and
    are evaluated in chunks of ``ev.batch_size`` images (both metrics are means over images, so
    chunking does not change them). Every model sees the same images and the same consistency
    offsets, so best and final differ by their parameters only.
    """
    import jax
    import numpy as np

    import jaxeq as jq
    from jaxeq import data as jdata

    def predictor(model, variables):
        @jax.jit
        def predict_fn(images):
            return model.apply(variables, jdata.to_model_input(images), train=False)
        return predict_fn

    predictors = {w: predictor(*_load_trained(train_cfg, workdir, w)) for w in dict.fromkeys(models)}
    kwargs = dict(train_cfg.data.kwargs)
    kwargs.update(dict(ev.data_kwargs))
    source = jdata.get(train_cfg.data.name, split=ev.split, seed=_data_seed(train_cfg), **kwargs)
    n = len(source) if not ev.max_images else min(int(ev.max_images), len(source))

    offsets = range(int(ev.max_offset) + 1)  # diagonal: o = 0..max_offset (SPEC: 0..64)
    correct = {w: np.zeros(len(offsets), np.int64) for w in predictors}
    agree = {w: 0.0 for w in predictors}
    count = 0
    key = jax.random.PRNGKey(int(ev.seed))
    for start in range(0, n, int(ev.batch_size)):
        idx = range(start, min(start + int(ev.batch_size), n))
        images = np.stack([np.asarray(source[i]["image"]) for i in idx])
        labels = np.array([source[i]["label"] for i in idx], np.int32)
        key, sub = jax.random.split(key)
        for which, predict_fn in predictors.items():
            diag = jq.diagonal_shift_accuracy(predict_fn, images, labels, crop=int(ev.crop),
                                              offsets=offsets)
            correct[which] += diag["correct"]
            # consistency offsets are uniform in {0..max_offset-1}^2 (SPEC: {0..63}^2), in %
            agree[which] += jq.crop_consistency(predict_fn, images, crop=int(ev.crop),
                                                max_offset=int(ev.max_offset),
                                                passes=int(ev.passes), key=sub) * len(idx)
        count += diag["count"]
    out = {}
    for which in predictors:
        curve = correct[which] / count * 100.0
        sfx = _model_suffix(which)
        out.update({f"diagonal{sfx}": float(curve.mean()),
                    f"diagonal_curve{sfx}": [float(a) for a in curve],
                    f"consistency{sfx}": float(agree[which] / n)})
    out["shift_eval_images"] = int(n)
    return out
