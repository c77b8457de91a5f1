"""What ``fit`` does before the first step, in order: validate the config, initialise
multi-host JAX if asked, check the device split, the workdir and the registry names, load the
data and trace the model's shapes (no compilation up to here, so every configuration error
surfaces in seconds); then record the config, build the initial state and compile the steps.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq.data import num_batches, to_model_input
from jaxeq.train import checkpoint as ckpt_lib
from jaxeq.train import config as cfg_lib
from jaxeq.train import mesh as mesh_lib
from jaxeq.train import optim, reporting, schedule as sched_lib, state as state_lib, steps


@dataclasses.dataclass
class Run:
    """The fixed parts of one ``fit`` call: checked config, data, mesh, compiled steps."""
    config: Any                  # validated, locked ConfigDict
    workdir: str                 # absolute
    is_main: bool                # process 0 (the one that writes files)
    sources: dict                # {split: source}
    steps_per_epoch: int
    lr_fn: Callable              # step -> lr before the plateau factor
    info: mesh_lib.MeshInfo
    train_step: Callable
    eval_step: Callable

    @property
    def train_source(self):
        return self.sources[self.config.data.train_split]

    @property
    def val_source(self):
        split = self.config.data.val_split
        return self.sources[split] if split else None


def prepare(config, workdir: str, model=None, sources: dict | None = None
            ) -> tuple[Run, state_lib.TrainState]:
    """Check everything, record the config in the workdir, build the initial (replicated) train
    state and compile the steps (see the module doc)."""
    config = cfg_lib.validate(config)
    mesh_lib.maybe_initialize_distributed(config)
    is_main = jax.process_index() == 0
    mesh_lib.check_batch_sizes(config.batch_size, config.eval_batch_size)
    workdir = os.path.abspath(workdir)
    check_workdir(workdir, config)
    if model is None:  # the cheap name check first, before any data is loaded
        _check_model_name(config)
    srcs = _load_sources(config, sources)
    train_src = srcs[config.data.train_split]
    num_classes = getattr(train_src, "num_classes", None)
    model = _build_model(config, model, num_classes)

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
    tx = optim.make_optimizer(config.optimizer, shapes["params"], config.trainable)
    lr_fn = sched_lib.base_lr_fn(config.schedule, config.optimizer.lr, steps_per_epoch,
                                 config.epochs)

    # ---- all checks passed: record the config, build the state, compile
    if is_main:
        reporting.write_json(os.path.join(workdir, "config.json"),
                             json.loads(cfg_lib.to_json(config)))
    info = mesh_lib.make_mesh()
    pretrained = _pretrained_variables(config, sample, num_classes)
    state, train_step, eval_step = _compile(config, model, tx, lr_fn, info, init_variables,
                                            pretrained, has_bs=bool(shapes.get("batch_stats")))
    run = Run(config, workdir, is_main, srcs, steps_per_epoch, lr_fn, info, train_step, eval_step)
    return run, state


def _compile(config, model, tx, lr_fn, info, init_variables, pretrained, *, has_bs: bool):
    """The initial (replicated) state and the jitted train and eval steps."""
    train_mode = not (config.trainable == "head" and not config.bn_update_frozen)
    init_key, train_key = jax.random.split(jax.random.PRNGKey(config.seed))
    state = jax.jit(
        lambda k, pre: state_lib.create(_overlay(init_variables(k), pre), tx, train_key),
        out_shardings=info.replicated)(init_key, pretrained)
    train_step, eval_step = steps.jit_steps(
        steps.make_train_step(model, tx, lr_fn, update_batch_stats=has_bs, train_mode=train_mode,
                              trainable=config.trainable),
        steps.make_eval_step(model, has_bs), info)
    return state, train_step, eval_step


# ----------------------------------------------------------------------------- checks
def check_workdir(workdir: str, config) -> None:
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


# ----------------------------------------------------------------------------- data and model
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


# ----------------------------------------------------------------------------- variables
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
