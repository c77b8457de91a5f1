"""E4b patch matching: HardNet descriptor training and FPR95 testing, cell by cell.

Patch matching is not classification, so it has its own loop instead of
:func:`jaxeq.train.fit`: a config with ``runner = "jaxeq.experiments.patch_matching_train"`` is
prepared and run by this module (:func:`prepare`, :func:`run`; ``jaxeq run`` and
``jaxeq.experiments.run`` hand such a config here). The rest is the generic runner's: cells in
``<workdir>/cells/<name>`` finished once ``cell.json`` is written (a rerun skips them; a cell
recorded with other settings is refused unless ``force``), results.json with provenance,
results.md and the PNG through the ``patch_matching`` report.

A cell (variant x training triplets x seed) trains as the official ``HardNet_fconv.py``
(:mod:`jaxeq.train.triplet`): ``n_triplets`` (anchor, positive) pairs drawn once, batches of
distinct 3D points in a fixed order every epoch, two train-mode forwards per step, the HardNet
loss, SGD lr 10 momentum 0.9 dampening 0.9 wd 1e-4 with the linear decay to 0 over
``epochs``; then FPR at 95% recall (percent) on every test scene's pairs with the final
network (the official code tests the network after its last epoch). ``train.checkpoint``:
the state is saved after every epoch (:class:`jaxeq.train.checkpoint.Checkpoints`) and an
interrupted cell resumes from its last finished epoch.

Data (``train.data.name``): ``phototour`` (``root`` holding the scenes; train on
``train_scene``, test on ``test_scenes``) or ``patch_pairs`` (the CPU analog,
:mod:`jaxeq.data.patch_pairs`: ``points`` x ``views`` training views, ``test_points`` test
places; the test set is built from ``test_seed`` so it is the same for every cell).
"""
from __future__ import annotations

import copy
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Mapping

import ml_collections
import numpy as np

from jaxeq._checks import choice, int_at_least
from jaxeq.experiments.grid import CELL_CONFIG, CELL_FILE, cell_dir, cell_name, read_cell, write_cell

DATA = ("phototour", "patch_pairs")
PATCH_SHAPE = (32, 32, 1)


def default_train() -> ml_collections.ConfigDict:
    """The official HardNet recipe (``HardNet_fconv.py`` defaults as ``run_me_fconv.sh`` runs it:
    no flip/rotation, no augmentation)."""
    t = ml_collections.ConfigDict()
    t.model = {"name": "hardnet", "kwargs": {}}
    t.data = {"name": "phototour", "root": "", "train_scene": "yosemite",
              "test_scenes": ("liberty", "notredame"), "points": 0, "views": 0,
              "test_points": 0, "test_seed": 0}
    t.n_triplets = 500000
    t.epochs = 10
    t.batch_size = 256
    t.eval_batch_size = 1024
    t.lr = 10.0
    t.momentum = 0.9
    t.dampening = 0.9
    t.weight_decay = 1e-4
    t.margin = 1.0
    t.anchor_swap = True
    t.seed = 0
    t.max_steps = ml_collections.FieldReference(None, field_type=int)  # stop early (smoke runs)
    t.checkpoint = True
    return t


# ----------------------------------------------------------------------------- cells
def cells(config) -> list[dict]:
    """Every cell: variants x triplets x seeds, named e.g. ``same/triplets1000/seed0``."""
    out = []
    for v in config.variants:
        for n in config.triplets:
            for s in config.seeds:
                coords = {"variant": v, "triplets": int(n), "seed": int(s)}
                out.append({"name": cell_name({"variant": v}) + f"/triplets{int(n)}/seed{int(s)}",
                            "cell": coords})
    return out


def cell_train(config, coords: Mapping) -> ml_collections.ConfigDict:
    """``config.train`` with the cell's variant definition, triplet count and seed applied."""
    t = copy.deepcopy(config.train)
    defs = dict(config.variant_defs)
    if coords["variant"] not in defs:
        raise ValueError(f"variant {coords['variant']!r} has no entry in config.variant_defs "
                         f"(known: {sorted(defs)})")
    kw = dict(t.model.kwargs)
    kw.update(dict(defs[coords["variant"]]["model"]["kwargs"]))
    t.model.kwargs = kw
    t.n_triplets = int(coords["triplets"])
    t.seed = int(coords["seed"])
    return t


def settings_json(t) -> dict:
    return json.loads(json.dumps(t.to_dict(), sort_keys=True, default=list))


def check_train(t) -> None:
    """A one-line ValueError naming the first bad field (before anything is built)."""
    choice("train.data.name", t.data.name, DATA)
    for field in ("n_triplets", "epochs", "batch_size", "eval_batch_size"):
        int_at_least(f"train.{field}", t[field], 1)
    int_at_least("train.max_steps", t.max_steps, 1, allow_none=True)
    if not (t.lr > 0 and t.margin > 0 and 0 <= t.momentum < 1 and 0 <= t.dampening <= 1):
        raise ValueError("train.lr and train.margin must be > 0, momentum in [0, 1), dampening "
                         f"in [0, 1]; got {t.lr}, {t.margin}, {t.momentum}, {t.dampening}")
    if t.data.name == "phototour":
        from jaxeq.data import phototour

        if not str(t.data.root):
            raise ValueError("train.data.root is empty: pass --config.train.data.root=ROOT, the "
                             "folder holding the PhotoTour scenes (ROOT/liberty, ROOT/notredame, "
                             "ROOT/yosemite)")
        for scene in (t.data.train_scene, *t.data.test_scenes):
            phototour.scene_dir(t.data.root, scene)
    else:
        for field in ("points", "views", "test_points"):
            int_at_least(f"train.data.{field}", t.data[field], 2)


# ----------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=4)
def _analog(points: int, views: int, seed: int, test_points: int, test_seed: int):
    from jaxeq.data import patch_pairs

    train = patch_pairs.render(points, views, test=False, seed=seed)
    test = patch_pairs.pair_set(test_points, seed=test_seed)
    return (train["patches"], train["labels"]), {"test": (test["patches"], test["matches"])}


def load_data(t):
    """``((train patches uint8 (N, 32, 32), point labels), {test name: (patches, matches)})``."""
    d = t.data
    if d.name == "patch_pairs":
        return _analog(int(d.points), int(d.views), int(t.seed), int(d.test_points), int(d.test_seed))
    from jaxeq.data.phototour import load_scene

    train = load_scene(str(d.root), d.train_scene)
    tests = {s: (load_scene(str(d.root), s)["patches"], load_scene(str(d.root), s)["matches"])
             for s in d.test_scenes}
    return (train["patches"], train["labels"]), tests


# ----------------------------------------------------------------------------- one cell
def _build(t):
    """(model, optimizer, jitted step, jitted describe), shared by the cells of one process
    that differ only in what the step takes as arguments (triplet count, seed)."""
    key = json.dumps([t.model.name, dict(t.model.kwargs), t.momentum, t.dampening,
                      t.weight_decay, t.margin, t.anchor_swap], sort_keys=True)
    return _built(key)


@functools.lru_cache(maxsize=4)
def _built(key: str):
    from jaxeq import models
    from jaxeq.train import triplet

    name, kwargs, momentum, dampening, wd, margin, swap = json.loads(key)
    model = models.get(name, **kwargs)
    tx = triplet.sgd_dampened(momentum, dampening, wd)
    step = triplet.make_train_step(model, tx, margin=margin, anchor_swap=swap)
    return model, tx, step, triplet.make_describe(model)


def fpr95_percent(describe, state, patches, matches, batch: int) -> float:
    """FPR at 95% recall (percent) of ``matches`` with the network in ``state``."""
    from jaxeq.data.phototour import to_float
    from jaxeq.train import triplet

    used = np.unique(matches[:, :2])
    where = np.full(int(used.max()) + 1, -1, np.int64)
    where[used] = np.arange(len(used))
    desc = np.concatenate([np.asarray(describe(state.params, state.batch_stats,
                                               to_float(patches[used[i:i + batch]])))
                           for i in range(0, len(used), batch)])
    dist = triplet.pair_distances(desc, where[matches[:, :2]])
    return 100.0 * triplet.fpr_at_95_recall(matches[:, 2], dist)


def _resume(t, subdir: Path, state):
    """(Checkpoints or None, state, epochs already done)."""
    if not t.checkpoint:
        return None, state, 0
    import jax

    from jaxeq.train import checkpoint as ckpt_lib

    ckpts = ckpt_lib.Checkpoints(str(subdir))
    found = ckpts.restore("latest", state, jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    if found is None:
        return ckpts, state, 0
    return ckpts, found[0], int(found[1]["epoch"])


def train_cell(t, subdir: Path, *, log: Callable[[str], None] = print) -> dict:
    """Train one cell (resuming from its last epoch checkpoint) and test it; returns
    ``{"metrics": {"fpr95": mean over test scenes, "fpr95_<scene>": ...}, "steps", "loss"}``."""
    from jaxeq.data.phototour import to_float, training_pairs
    from jaxeq.train import triplet

    (patches, labels), tests = load_data(t)
    pairs = training_pairs(labels, t.n_triplets, t.batch_size, t.seed)
    model, tx, step, describe = _build(t)
    state = triplet.create_state(model, tx, t.seed, PATCH_SHAPE)
    ckpts, state, done = _resume(t, subdir, state)
    per_epoch = -(-len(pairs) // t.batch_size)
    limit = t.max_steps or per_epoch * t.epochs
    losses = []
    try:
        for epoch in range(done, t.epochs):
            for b in range(per_epoch):
                if epoch * per_epoch + b >= limit:
                    break
                idx = pairs[b * t.batch_size:(b + 1) * t.batch_size]
                lr = triplet.hardnet_lr(state.step, lr=t.lr, batch_size=t.batch_size,
                                        n_triplets=t.n_triplets, epochs=t.epochs)
                state, loss = step(state, to_float(patches[idx[:, 0]]), to_float(patches[idx[:, 1]]), lr)
                losses.append(loss)
            mean = float(np.mean([float(x) for x in losses[-per_epoch:]])) if losses else float("nan")
            log(f"    epoch {epoch + 1}/{t.epochs}: loss {mean:.4f}")
            if ckpts is not None:
                ckpts.save("latest", state, {"epoch": epoch + 1})
            if epoch * per_epoch + per_epoch >= limit:
                break
    finally:
        if ckpts is not None:
            ckpts.close()
    metrics = {f"fpr95_{name}": fpr95_percent(describe, state, p, m, t.eval_batch_size)
               for name, (p, m) in tests.items()}
    metrics["fpr95"] = float(np.mean(list(metrics.values())))
    return {"metrics": metrics, "steps": int(state.step),
            "final_loss": float(losses[-1]) if losses else None}


# ----------------------------------------------------------------------------- the table
def prepare(config, workdir, *, force: bool = False) -> dict:
    """Every cell's settings checked, and every finished cell in ``workdir`` compared with
    them: a ValueError (or, with ``force``, the cell listed as stale) when they differ."""
    settings, stale = {}, []
    for cell in cells(config):
        t = cell_train(config, cell["cell"])
        try:
            check_train(t)
        except (ValueError, TypeError, OSError) as e:
            raise ValueError(f"{config.experiment} cell {cell['name']!r}: bad config, nothing was "
                             f"run ({type(e).__name__}: {e})") from e
        settings[cell["name"]] = t
        recorded = read_cell(cell_dir(workdir, cell["name"])).get(CELL_CONFIG)
        if recorded is not None and recorded != {"train": settings_json(t)}:
            stale.append((cell["name"], "its recorded train settings differ from this run's"))
    if stale and not force:
        raise ValueError(f"workdir {str(workdir)!r}: cell {stale[0][0]!r} was run with other "
                         f"settings ({stale[0][1]}). Use a new --workdir, or --force to retrain "
                         f"the mismatching cells (their old results are deleted)")
    return {"settings": settings, "stale": stale}


def run(config, workdir, *, log: Callable[[str], None] = print, force: bool = False, **_) -> dict:
    """Train and test every cell (finished ones are read back), then write results.json,
    results.md and the plot (:func:`jaxeq.experiments.runner.write_outputs`)."""
    from jaxeq.experiments.provenance import provenance
    from jaxeq.experiments.runner import write_outputs

    workdir = Path(workdir)
    origin = provenance()
    plan = prepare(config, workdir, force=force)
    for name, why in plan["stale"]:
        log(f"--force: retraining {name} ({why}); its old folder is deleted")
        shutil.rmtree(cell_dir(workdir, name))
    t0, records, all_cells = time.perf_counter(), [], cells(config)
    for i, cell in enumerate(all_cells, 1):
        subdir = cell_dir(workdir, cell["name"])
        tc = time.perf_counter()
        if (subdir / CELL_FILE).is_file():
            rec = read_cell(subdir)
            rec.pop(CELL_CONFIG, None)
            how = "cached"
        else:
            subdir.mkdir(parents=True, exist_ok=True)
            t = plan["settings"][cell["name"]]
            out = train_cell(t, subdir, log=log)
            rec = {"name": cell["name"], "cell": cell["cell"], "metrics": out["metrics"],
                   "epochs": t.epochs, "steps": out["steps"], "final_loss": out["final_loss"],
                   "wall_s": round(time.perf_counter() - tc, 2)}
            write_cell(subdir, rec, {"train": settings_json(t)})
            how = f"{time.perf_counter() - tc:.1f} s"
        records.append(rec)
        left = len(all_cells) - i
        log(f"[{i}/{len(all_cells)}] {config.experiment} {cell['name']}: FPR95 "
            f"{rec['metrics']['fpr95']:.2f}% ({how}; {left} cells left)")
    out = write_outputs(config, records, workdir, wall_s=round(time.perf_counter() - t0, 1),
                        origin=origin)
    out["records"] = records
    return out


__all__ = ["cell_train", "cells", "check_train", "default_train", "fpr95_percent", "load_data",
           "prepare", "run", "train_cell"]
