"""``fit(config, workdir)``: the one training loop for every platform and experiment.

Order of work: validate the config, initialise multi-host JAX if asked, check the device
split, the workdir and the registry names, load the data and trace the model's shapes (no
compilation up to here, so every configuration error surfaces in seconds), then compile,
restore the latest checkpoint if there is one, and train epoch by epoch.

Resume is exact: the checkpoint holds the state and the data position (epoch, batches
consumed); the shuffle order depends only on (seed, epoch) and ``start_batch`` skips ahead, so
a restarted run feeds the same batches to the same state and, on CPU, reproduces the
uninterrupted run bit for bit.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq.train import checkpoint as ckpt_lib
from jaxeq.train import config as cfg_lib
from jaxeq.train import mesh as mesh_lib
from jaxeq.train import optim, reporting, schedule as sched_lib, state as state_lib, steps
from jaxeq.train._batching import batches, num_batches, to_model_input


# ----------------------------------------------------------------------------- checks
def _check_workdir(workdir: str, config) -> None:
    """Writable, and not holding another configuration's run."""
    try:
        if jax.process_index() == 0:  # only process 0 writes files
            os.makedirs(workdir, exist_ok=True)
            probe = os.path.join(workdir, ".write_probe")
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
    except OSError as e:
        raise PermissionError(f"workdir {workdir!r} is not writable ({e.strerror or e})") from e
    mine = json.loads(cfg_lib.to_json(config))
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            theirs = json.load(f)
        diff = cfg_lib.identity_diff(theirs, mine)
        if diff:
            shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:6])
            raise ValueError(f"workdir {workdir!r} holds a run of another config (differs in "
                             f"{shown}); use a new workdir or delete it to start over")
    elif ckpt_lib.has_checkpoint(workdir):
        raise ValueError(f"workdir {workdir!r} holds checkpoints but no config.json; refusing "
                         "to resume a run whose config is unknown")


def _registry(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"config names a {what} but {module} is not available ({e}); pass the "
                         f"{what} to fit() directly") from e


def _check_model_name(config) -> None:
    names = list(_registry("jaxeq.models", "model").names())
    if config.model.name not in names:
        raise ValueError(f"config: model.name={config.model.name!r} is not one of {names}")


def initial_variables(model, seed: int, sample_image) -> dict:
    """The variables ``fit`` starts from (``model.init`` with the seed's init key)."""
    init_key, _ = jax.random.split(jax.random.PRNGKey(seed))
    return _initializer(model, np.asarray(sample_image))(init_key)


def _initializer(model, sample):
    """``key -> model.init(...)`` on a batch of one sample (shape and dtype from the data)."""
    def init_variables(key):
        dummy = jnp.zeros((1,) + sample.shape, sample.dtype)
        return model.init(key, to_model_input(dummy), train=False)
    return init_variables


def _pretrained_variables(config, sample, num_classes) -> dict:
    """Variables read from ``config.init_weights`` (empty dict when unset), without the
    ``init_exclude`` modules, which keep their fresh initialisation."""
    if not config.init_weights:
        return {}
    path = os.path.expanduser(str(config.init_weights))
    if not os.path.isfile(path):
        raise ValueError(f"config: init_weights={config.init_weights!r} is not a file; give a "
                         f"local .pth, .npz or .safetensors checkpoint (nothing is downloaded)")
    from jaxeq import weights

    kwargs = dict(config.model.kwargs)
    if num_classes is not None:
        kwargs.setdefault("num_classes", int(num_classes))
    exclude = tuple(config.init_exclude)
    loaded = weights.load_torch(path, config.model.name, exclude=exclude,
                                input_shape=(1,) + tuple(sample.shape), **kwargs)
    return {col: {k: v for k, v in dict(tree).items() if k not in exclude}
            for col, tree in dict(loaded).items()}


def _overlay(fresh: dict, pretrained: dict) -> dict:
    """``fresh`` variables with every top-level module found in ``pretrained`` replaced."""
    out = {col: dict(tree) for col, tree in dict(fresh).items()}
    for col, tree in pretrained.items():
        for name, sub in tree.items():
            out[col][name] = jax.tree.map(lambda f, p: p.astype(f.dtype), out[col][name], sub)
    return out


def _build_model(config, model, num_classes):
    if model is None:
        models = _registry("jaxeq.models", "model")
        kwargs = dict(config.model.kwargs)
        if num_classes is not None:
            kwargs.setdefault("num_classes", int(num_classes))
        if config.dtype == "bfloat16":
            kwargs.setdefault("dtype", jnp.bfloat16)
        return models.get(config.model.name, **kwargs)
    if config.dtype == "bfloat16" and hasattr(model, "dtype"):
        model = model.clone(dtype=jnp.bfloat16)
    return model


def _load_sources(config, sources) -> dict:
    d = config.data
    splits = [d.train_split] + ([d.val_split] if d.val_split else []) + list(d.test_splits)
    if sources is not None:
        missing = [s for s in splits if s not in sources]
        if missing:
            raise ValueError(f"sources lacks split(s) {missing}; it has {sorted(sources)}")
        return {s: sources[s] for s in splits}
    data = _registry("jaxeq.data", "data set")
    if hasattr(data, "names") and d.name not in list(data.names()):
        raise ValueError(f"config: data.name={d.name!r} is not one of {list(data.names())}")
    seed = cfg_lib.data_seed(config)
    return {s: data.get(d.name, split=s, seed=seed, **dict(d.kwargs)) for s in splits}


# ----------------------------------------------------------------------------- helpers
def _fetch(tree):
    """Host copy of replicated arrays (works with any number of processes)."""
    return jax.tree.map(
        lambda a: np.asarray(a.addressable_data(0) if isinstance(a, jax.Array) else a), tree)


def improves(best: dict | None, val: dict, best_by: str = "val_loss") -> bool:
    """Whether validation result ``val`` replaces the ``best`` so far (None: nothing yet):
    strictly lower loss (``val_loss``) or strictly higher top-1 (``val_accuracy``)."""
    if best is None:
        return True
    if best_by == "val_accuracy":
        return val["accuracy"] > best["accuracy"]
    return val["loss"] < best["loss"]


class NonFiniteLossError(FloatingPointError):
    """A non-finite loss or gradient stopped the run (the last good checkpoint is kept)."""


# ----------------------------------------------------------------------------- fit
def fit(config, workdir: str, *, model=None, sources: dict | None = None) -> dict:
    """Train ``config`` in ``workdir`` (resuming from its checkpoints) and return the results.

    ``model`` (a flax module) and ``sources`` (``{split: source}``) bypass the registries
    ``jaxeq.models.get`` / ``jaxeq.data.get`` (tests, notebooks). Results: ``best_val``,
    ``test`` (per split, evaluated with the best-validation parameters), ``final_train``,
    ``epochs_run``, ``steps``, ``stop_reason``, ``final_lr``, device/process counts.
    """
    t_start = time.time()
    config = cfg_lib.validate(config)
    mesh_lib.maybe_initialize_distributed(config)
    is_main = jax.process_index() == 0
    mesh_lib.check_batch_sizes(config.batch_size, config.eval_batch_size)
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir, config)
    if model is None:  # the cheap name check first, before any data is loaded
        _check_model_name(config)
    srcs = _load_sources(config, sources)
    train_src = srcs[config.data.train_split]
    val_src = srcs[config.data.val_split] if config.data.val_split else None
    model = _build_model(config, model, getattr(train_src, "num_classes", None))

    steps_per_epoch = num_batches(train_src, config.batch_size, True)
    if steps_per_epoch == 0:
        raise ValueError(f"config: batch_size={config.batch_size} exceeds the training set "
                         f"({len(train_src)} examples): no full batch")
    sample = np.asarray(train_src[0]["image"])
    init_variables = _initializer(model, sample)
    # Shapes only (tracing, no compilation): model and trainable errors surface here.
    shapes = jax.eval_shape(init_variables, jax.ShapeDtypeStruct((2,), jnp.uint32))
    if config.trainable == "head":
        optim.trainable_labels(shapes["params"], "head")
    has_bs = bool(shapes.get("batch_stats"))
    tx = optim.make_optimizer(config.optimizer, shapes["params"], config.trainable)
    lr_fn = sched_lib.base_lr_fn(config.schedule, config.optimizer.lr, steps_per_epoch,
                                 config.epochs)
    train_mode = not (config.trainable == "head" and not config.bn_update_frozen)
    init_key, train_key = jax.random.split(jax.random.PRNGKey(config.seed))

    # ---- all checks passed: record the config, compile, (re)store
    if is_main:
        reporting.write_json(os.path.join(workdir, "config.json"),
                             json.loads(cfg_lib.to_json(config)))
    info = mesh_lib.make_mesh()
    rep = info.replicated
    pretrained = _pretrained_variables(config, sample, getattr(train_src, "num_classes", None))
    state = jax.jit(
        lambda k, pre: state_lib.create(_overlay(init_variables(k), pre), tx, train_key),
        out_shardings=rep)(init_key, pretrained)
    train_step, eval_step = steps.jit_steps(
        steps.make_train_step(model, tx, lr_fn, update_batch_stats=has_bs, train_mode=train_mode,
                             trainable=config.trainable),
        steps.make_eval_step(model, has_bs), info)

    ckpts = ckpt_lib.Checkpoints(workdir)
    plateau0 = sched_lib.Plateau(threshold=float(config.schedule.threshold))
    meta = {"epoch": 0, "batch": 0, "plateau": sched_lib.to_dict(plateau0),
            "early": sched_lib.to_dict(sched_lib.EarlyStopping()), "best": None, "done": False,
            "stop_reason": None, "final_train": None,
            "config": json.loads(cfg_lib.to_json(config))}
    restored = ckpts.restore("latest", state, rep)
    resumed_from = None
    if restored is not None:
        state, meta = restored
        resumed_from = int(_fetch(state.step))
        logging.info("jaxeq.train: resuming %s at step %d (epoch %d, batch %d)", workdir,
                     resumed_from, meta["epoch"], meta["batch"])
        done_epochs = meta["epoch"]
        if is_main:  # drop records written after the restored checkpoint
            reporting.truncate_jsonl(os.path.join(workdir, "metrics.jsonl"),
                                     lambda r: r["epoch"] <= done_epochs)
            step0 = int(_fetch(state.step))
            reporting.truncate_jsonl(os.path.join(workdir, "train_steps.jsonl"),
                                     lambda r: r["step"] <= step0)
    plateau = sched_lib.from_dict(sched_lib.Plateau, meta["plateau"])
    early = sched_lib.from_dict(sched_lib.EarlyStopping, meta["early"])
    epoch, batch_pos = meta["epoch"], meta["batch"]
    host_step = int(_fetch(state.step))
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    reporter = reporting.Reporter(workdir, active=is_main, batch_size=config.batch_size,
                                  total_steps=total_steps, done_steps=host_step,
                                  progress=config.progress)

    def current_lr(st, step=None) -> float:
        """The lr of step ``step`` (default: the next step to run)."""
        return float(lr_fn(host_step if step is None else step)) * float(_fetch(st.lr_factor))

    def check_finite(metrics) -> None:
        bad = int(_fetch(metrics["nonfinite_step"]))
        if bad >= 0:
            last = ckpts.path("latest")
            raise NonFiniteLossError(
                f"non-finite loss or gradient at step {bad} (0-based global step; epoch "
                f"{bad // steps_per_epoch}, batch {bad % steps_per_epoch}); that update was not "
                f"applied and the run stopped. Last good checkpoint (kept): "
                f"{last or 'none saved yet'}")

    def evaluate(st, source) -> dict:
        m = jax.device_put(state_lib.zero_metrics(), rep)
        for local in batches(source, config.eval_batch_size, shuffle=False, seed=config.seed,
                             epoch=0, process_index=jax.process_index(),
                             process_count=jax.process_count(), drop_remainder=False):
            m = eval_step(st, mesh_lib.global_batch(local, info, config.eval_batch_size), m)
        return state_lib.summarize(_fetch(m))

    def save_latest(st) -> None:
        check_finite(st.epoch_metrics)
        meta.update(epoch=epoch, batch=batch_pos, plateau=sched_lib.to_dict(plateau),
                    early=sched_lib.to_dict(early))
        ckpts.save("latest", st, meta)

    t_log, steps_at_log = time.time(), host_step
    try:
        while not meta["done"]:
            if epoch >= config.epochs or (config.max_steps and host_step >= config.max_steps):
                meta["stop_reason"] = meta["stop_reason"] or "epochs"
                meta["done"] = True
                save_latest(state)
                break
            lr_epoch = current_lr(state, epoch * steps_per_epoch)
            it = batches(train_src, config.batch_size, shuffle=config.data.shuffle,
                         seed=config.seed, epoch=epoch, process_index=jax.process_index(),
                         process_count=jax.process_count(), drop_remainder=True,
                         start_batch=batch_pos)
            hit_max = False
            for local in it:  # jaxeq.data.batches prefetches on a thread
                state = train_step(state, mesh_lib.global_batch(local, info, config.batch_size))
                host_step += 1
                batch_pos += 1
                reporter.advance()
                if host_step % config.log_every_steps == 0:
                    logged = _fetch(state.log_metrics)
                    check_finite(logged)
                    now = time.time()
                    rate = (host_step - steps_at_log) / max(now - t_log, 1e-9)
                    reporter.train_log({"step": host_step, "epoch": epoch,
                                        "lr": current_lr(state, host_step - 1),
                                        **state_lib.summarize(logged),
                                        "steps_per_s": rate,
                                        "images_per_s": rate * config.batch_size})
                    t_log, steps_at_log = now, host_step
                    state = state.replace(
                        log_metrics=jax.device_put(state_lib.zero_metrics(), rep))
                hit_max = bool(config.max_steps) and host_step >= config.max_steps
                if hit_max:
                    break
                if (config.checkpoint_every_steps and host_step % config.checkpoint_every_steps == 0
                        and batch_pos < steps_per_epoch):  # epoch ends save anyway
                    save_latest(state)

            # ---- end of epoch (or of max_steps): evaluate, decide, checkpoint
            check_finite(state.epoch_metrics)
            train_metrics = state_lib.summarize(_fetch(state.epoch_metrics))
            record = {"epoch": epoch + 1, "step": host_step, "lr": lr_epoch,
                      "train_loss": train_metrics["loss"],
                      "train_accuracy": train_metrics["accuracy"]}
            meta["final_train"] = train_metrics
            if val_src is not None:
                val = evaluate(state, val_src)
                record.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
                if improves(meta["best"], val, config.best_by):
                    meta["best"] = {"loss": val["loss"], "accuracy": val["accuracy"],
                                    "epoch": epoch + 1, "step": host_step}
                    ckpts.save("best", state, meta)
                if config.schedule.name == "plateau" and plateau.update(
                        val["loss"], config.schedule.patience):
                    factor = float(_fetch(state.lr_factor)) * config.schedule.factor
                    if config.schedule.reload_best and ckpts.path("best"):
                        best_state, _ = ckpts.restore("best", state, rep)
                        state = state.replace(params=best_state.params,
                                              batch_stats=best_state.batch_stats,
                                              opt_state=best_state.opt_state)
                    state = state.replace(lr_factor=jax.device_put(
                        jnp.asarray(factor, jnp.float32), rep))
                    record["lr_reduced_to"] = current_lr(state)
                    if current_lr(state) <= config.schedule.min_lr:
                        meta["stop_reason"] = "min_lr"
                if early.update(val["loss"], config.early_stopping_patience):
                    meta["stop_reason"] = meta["stop_reason"] or "early_stopping"
            record["time_s"] = time.time() - t_start
            epoch += 1
            batch_pos = 0
            if hit_max:
                meta["stop_reason"] = meta["stop_reason"] or "max_steps"
            if meta["stop_reason"] or epoch >= config.epochs:
                meta["stop_reason"] = meta["stop_reason"] or "epochs"
                meta["done"] = True
            state = state.replace(epoch_metrics=jax.device_put(state_lib.zero_metrics(), rep))
            reporter.eval_record(record)
            save_latest(state)

        # ---- test with the best-validation parameters
        final_lr = current_lr(state)
        eval_state = state
        if val_src is not None and ckpts.path("best"):
            eval_state, _ = ckpts.restore("best", state, rep)
        tests = {s: evaluate(eval_state, srcs[s]) for s in config.data.test_splits}
        paths = {"best_checkpoint": ckpts.path("best"), "latest_checkpoint": ckpts.path("latest")}
    finally:
        reporter.close()
        ckpts.close()
    results = {"model": config.model.name, "data": config.data.name,
               "best_val": meta["best"], "test": tests, "final_train": meta["final_train"],
               "epochs_run": epoch, "steps": host_step, "stop_reason": meta["stop_reason"],
               "final_lr": final_lr, "resumed_from_step": resumed_from,
               "num_devices": jax.device_count(), "num_processes": jax.process_count(),
               **paths, "wall_time_s": time.time() - t_start}
    if is_main:
        reporting.write_json(os.path.join(workdir, "results.json"), results)
        reporter.summary(results)
    return results
