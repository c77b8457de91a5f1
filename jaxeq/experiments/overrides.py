"""Loading an experiment config by name or file, and ``--config.key=value`` overrides.

A spec is ``NAME[:variant]`` for a config packaged in :mod:`jaxeq.experiments.configs`
(``red_green:quick``) or ``PATH.py[:variant]`` for a user's own file; either way the config is
``get_config(variant)``. What a run changed from the config's own settings is written into
results.md (:func:`overrides_note`) and results.json.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Sequence

import ml_collections

from jaxeq.experiments import configs


def _config_file(spec_path: str) -> Path:
    """The file a spec's path part names: a packaged config, or an existing ``.py`` file."""
    if spec_path in configs.names():
        return configs.path(spec_path)
    if spec_path.endswith(".py") and os.path.isfile(spec_path):
        return Path(spec_path)
    stem = Path(spec_path).stem
    if spec_path.endswith(".py") and stem in configs.names():
        raise ValueError(f"no file {spec_path!r}; the experiment configs are packaged with jaxeq: "
                         f"use the name {stem!r} (e.g. jaxeq run {stem}:quick)")
    raise ValueError(f"config must be a packaged experiment name {tuple(configs.names())} or an "
                     f"existing <file>.py, each with an optional :variant; got {spec_path!r}")


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Load ``NAME[:variant]`` or ``path.py[:variant]`` (calls its ``get_config(variant)``) and
    apply ``--config.k=v`` overrides."""
    spec_path, _, variant = str(spec).partition(":")
    path = _config_file(spec_path)
    module_spec = importlib.util.spec_from_file_location("jaxeq_experiment_" + path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} has no get_config(arg) function")
    config = module.get_config(variant or None)
    if not isinstance(config, ml_collections.ConfigDict):
        raise TypeError(f"{path}:get_config must return an ml_collections.ConfigDict, got {type(config)}")
    with config.unlocked():
        config.config_path = str(path.resolve())
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


def config_changes(config: ml_collections.ConfigDict) -> dict:
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


def overrides_note(config: ml_collections.ConfigDict, changes: dict | None = None) -> str:
    """The results.md line saying which settings this run changed from the experiment file."""
    changes = config_changes(config) if changes is None else changes
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
