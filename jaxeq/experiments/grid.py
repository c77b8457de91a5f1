"""The cells of an experiment's table and what each one records in its folder.

A cell is one point on the config's axes (variant x arch x init x border x images per class x
seed). Its settings are ``config.train`` with the axis definitions and values applied
(:func:`cell_settings`); it trains in ``<workdir>/cells/<name>`` (:func:`cell_dir`) and is
finished once that folder holds ``cell.json``: its record plus the settings it was made with.
"""
from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path
from typing import Mapping

import ml_collections

# axis (config field) -> coordinate name in a cell
AXES = (("variants", "variant"), ("archs", "arch"), ("inits", "init"), ("borders", "border"),
        ("images_per_class", "images_per_class"), ("seeds", "seed"))
DEFAULT_TARGETS = {"archs": "model.name", "borders": "data.kwargs.border",
                   "images_per_class": "data.kwargs.images_per_class", "seeds": "seed"}
# short prefixes for numeric coordinates in cell folder names
_DIR_PREFIX = {"border": "border", "images_per_class": "ipc", "seed": "seed"}
CELL_FILE = "cell.json"
CELL_CONFIG = "config"  # cell.json key: the cell's recorded train config and split kwargs


def cell_name(coords: Mapping) -> str:
    """A cell's folder name relative to ``<workdir>/cells``, e.g. ``same_zero/seed0``."""
    return "/".join(f"{_DIR_PREFIX[c]}{v}" if c in _DIR_PREFIX else str(v) for c, v in coords.items())


def cell_dir(workdir: str | os.PathLike, name: str) -> Path:
    """The folder the cell ``name`` trains in (its checkpoints, config.json and cell.json)."""
    return Path(workdir) / "cells" / name


def cells(config: Mapping) -> list[dict]:
    """Every cell of the experiment's table: ``[{"name": "same_zero/seed0", "cell": {...}}]``.

    ``config.skip_cells`` (optional): partial coordinates, e.g. ``({"arch": "bagnet33",
    "border": 64},)``; a cell that matches every key of one of them is left out (its table
    entry reads "not run")."""
    axes = [(field, coord, list(config[field])) for field, coord in AXES
            if field in config and config[field] is not None]
    for field, _, values in axes:
        if not values:
            raise ValueError(f"config.{field} is empty: nothing to run")
    skip = _skip_cells(config, [coord for _, coord, _ in axes])
    out = []
    for combo in itertools.product(*[values for _, _, values in axes]):
        coords = {coord: v for (_, coord, _), v in zip(axes, combo)}
        if not any(all(coords[k] == v for k, v in s.items()) for s in skip):
            out.append({"name": cell_name(coords), "cell": coords})
    if not out:
        raise ValueError("config.skip_cells leaves out every cell: nothing to run")
    return out


def _skip_cells(config: Mapping, coords: list[str]) -> list[dict]:
    skip = [dict(s) for s in (config.get("skip_cells") or ())]
    for s in skip:
        if not s or any(k not in coords for k in s):
            raise ValueError(f"config.skip_cells entries must be non-empty dicts keyed by the "
                             f"table's coordinates {coords}; got {s!r}")
    return skip


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


def cell_run_settings(config: ml_collections.ConfigDict, coords: Mapping):
    """``(train_config, split_kwargs)`` exactly as the cell is trained (:func:`cell_settings`
    plus the weights file of a pretrained_frozen cell)."""
    train_cfg, split_kwargs = cell_settings(config, coords)
    if coords.get("init") == "pretrained_frozen":
        train_cfg.init_weights = _pretrained_path(config, coords)
    return train_cfg, split_kwargs


# ----------------------------------------------------------------------------- cell.json
def identity_json(train_cfg, split_kwargs: Mapping) -> dict:
    """What a cell records about its settings: the validated train config (as the trainer
    writes it to config.json) and the split kwargs, as JSON."""
    from jaxeq.train import config as cfg_lib

    return {"train": json.loads(cfg_lib.to_json(cfg_lib.validate(train_cfg))),
            "split_kwargs": json.loads(json.dumps(split_kwargs, sort_keys=True, default=str))}


def read_cell(subdir: Path) -> dict:
    """The contents of a cell folder's ``cell.json`` ({} when the cell has not finished)."""
    path = Path(subdir) / CELL_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_cell(subdir: Path, record: Mapping, recorded_config: Mapping | None) -> None:
    """``cell.json``: the record plus (under ``config``) the train config and split kwargs it was
    made with; written atomically: a cell is finished only once its record is complete."""
    out = dict(record)
    if recorded_config is not None:
        out[CELL_CONFIG] = recorded_config
    tmp = Path(subdir) / (CELL_FILE + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(Path(subdir) / CELL_FILE)


def recorded_settings(subdir: Path) -> dict | None:
    """What a cell's folder records of its settings: cell.json's ``config`` (train config and
    split kwargs), else the trainer's config.json (train config only: a cell interrupted
    mid-training, or one written without a recorded config), else None."""
    rec = read_cell(subdir).get(CELL_CONFIG)
    if rec is not None:
        return rec
    path = Path(subdir) / "config.json"
    if path.is_file():
        return {"train": json.loads(path.read_text())}
    return None
