"""The trainer's configuration: one ``ml_collections.ConfigDict`` and its validation.

Experiments start from :func:`default_config` and override fields; :func:`validate` rejects
unknown keys (a typo is an error, not a silently ignored setting) and unknown names, before
anything is compiled.
"""
from __future__ import annotations

import difflib
import json
from typing import Any

import ml_collections

from jaxeq import _checks

OPTIMIZERS = ("sgd", "adadelta", "adam")
SCHEDULES = ("constant", "step", "cosine", "plateau")
TRAINABLE = ("all", "head")
DTYPES = ("float32", "bfloat16")
PROGRESS = ("auto", "on", "off")
BEST_BY = ("val_loss", "val_accuracy")

# Fields whose values do not change what is computed: a run may be resumed with them changed.
RUNTIME_ONLY = ("log_every_steps", "checkpoint_every_steps", "distributed", "progress")


def default_config() -> ml_collections.ConfigDict:
    """The trainer's defaults (every field the trainer reads; nothing else is allowed)."""
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict()
    c.model.name = ""          # jaxeq.models registry name
    c.model.kwargs = ml_collections.ConfigDict()   # free-form, passed to jaxeq.models.get
    c.data = ml_collections.ConfigDict()
    c.data.name = ""           # jaxeq.data registry name
    c.data.kwargs = ml_collections.ConfigDict()    # free-form, passed to jaxeq.data.get
    c.data.train_split = "train"
    c.data.val_split = "val"   # None: no validation (then no plateau / early stopping)
    c.data.test_splits = ["test"]
    c.data.shuffle = True      # shuffle the training set each epoch (seeded by seed, epoch)
    # Seed of the data set itself (None: the run's ``seed``). Fixing it while ``seed`` varies
    # repeats a protocol over initialisations on one data set, as the paper's E2 did.
    c.data.seed = ml_collections.FieldReference(None, field_type=int)

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.1
    c.optimizer.momentum = 0.9     # sgd
    c.optimizer.nesterov = False   # sgd
    c.optimizer.weight_decay = 0.0  # L2 added to the gradient before momentum (PyTorch)
    c.optimizer.rho = 0.9          # adadelta
    c.optimizer.eps = 1e-6         # adadelta and adam
    c.optimizer.b1 = 0.9           # adam
    c.optimizer.b2 = 0.999         # adam

    c.schedule = ml_collections.ConfigDict()
    c.schedule.name = "constant"
    c.schedule.step_epochs = 30    # step: lr *= factor every step_epochs epochs
    c.schedule.factor = 0.1        # step and plateau
    c.schedule.patience = 5        # plateau: epochs without val-loss improvement before reducing
    c.schedule.min_lr = 0.0        # plateau: stop when lr <= min_lr (0: never)
    c.schedule.threshold = 1e-4    # plateau: relative improvement that resets patience (PyTorch's)
    c.schedule.reload_best = False  # plateau: reload the best checkpoint when reducing

    # Which validation number picks the 'best' checkpoint (the one the test splits use):
    # val_loss (lowest; E1/E2) or val_accuracy (highest top-1; the official ImageNet scripts'
    # model_best, E3). A later epoch replaces it only if strictly better.
    c.best_by = "val_loss"
    c.early_stopping_patience = ml_collections.FieldReference(None, field_type=int)
    c.epochs = 1
    c.max_steps = ml_collections.FieldReference(None, field_type=int)  # stop early (tests, bench)
    c.batch_size = 32              # GLOBAL batch (all devices, all processes)
    c.eval_batch_size = ml_collections.FieldReference(None, field_type=int)  # None: batch_size
    c.seed = 0
    c.trainable = "all"
    # Start from pretrained weights: a local torchvision/BagNet .pth, .npz or .safetensors file
    # read by jaxeq.weights.load_torch ("" = random init). init_exclude: top-level modules that
    # keep their fresh initialisation (the new classifier).
    c.init_weights = ""
    c.init_exclude = ("head",)
    c.bn_update_frozen = True      # trainable='head': BatchNorm statistics still update
    c.dtype = "float32"            # compute dtype; parameters and loss stay float32
    c.log_every_steps = 50
    c.checkpoint_every_steps = 500  # mid-epoch "latest" checkpoints (0: only at epoch ends)
    c.distributed = False          # call jax.distributed.initialize() (multi-host)
    c.progress = "auto"            # progress bar: auto (only on a TTY), on, off
    return c


def _check_keys(cfg: Any, ref: ml_collections.ConfigDict, prefix: str) -> None:
    free_form = {"model.kwargs", "data.kwargs"}
    keys = list(cfg.keys())
    for key in keys:
        path = f"{prefix}{key}"
        if key not in ref:
            close = difflib.get_close_matches(key, list(ref.keys()), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"config: unknown key {path!r}{hint}; allowed keys under "
                             f"{prefix or 'the top level'}: {sorted(ref.keys())}")
        if isinstance(ref[key], ml_collections.ConfigDict) and path not in free_form:
            if not isinstance(cfg[key], (ml_collections.ConfigDict, dict)):
                raise TypeError(f"config: {path!r} must be a section, got {cfg[key]!r}")
            _check_keys(cfg[key], ref[key], path + ".")


def _choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"config: {name}={value!r} is not one of {list(allowed)}")


def _positive_int(value, name, allow_none=False, allow_zero=False):
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ValueError(f"config: {name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"int{' or None' if allow_none else ''}, got {value!r}")


def validate(config) -> ml_collections.ConfigDict:
    """Return a complete, checked copy of ``config`` (missing fields take the defaults).

    Raises ValueError/TypeError naming the field and the allowed values. Names of models and
    data sets are checked against their registries by the loop (they may be injected in tests).
    """
    if isinstance(config, dict):
        config = ml_collections.ConfigDict(config)
    if not isinstance(config, ml_collections.ConfigDict):
        raise TypeError(f"config must be an ml_collections.ConfigDict, got {type(config).__name__}")
    ref = default_config()
    _check_keys(config, ref, "")
    merged = default_config()
    merged.update(config.to_dict() if hasattr(config, "to_dict") else dict(config))
    c = merged
    _choice(c.optimizer.name, OPTIMIZERS, "optimizer.name")
    _choice(c.schedule.name, SCHEDULES, "schedule.name")
    _choice(c.trainable, TRAINABLE, "trainable")
    _choice(c.dtype, DTYPES, "dtype")
    _choice(c.progress, PROGRESS, "progress")
    _choice(c.best_by, BEST_BY, "best_by")
    _positive_int(c.epochs, "epochs")
    _positive_int(c.batch_size, "batch_size")
    _positive_int(c.eval_batch_size, "eval_batch_size", allow_none=True)
    _positive_int(c.max_steps, "max_steps", allow_none=True)
    _positive_int(c.early_stopping_patience, "early_stopping_patience", allow_none=True)
    _positive_int(c.log_every_steps, "log_every_steps")
    _positive_int(c.checkpoint_every_steps, "checkpoint_every_steps", allow_zero=True)
    _positive_int(c.schedule.step_epochs, "schedule.step_epochs")
    _positive_int(c.schedule.patience, "schedule.patience", allow_zero=True)
    if not isinstance(c.seed, int):
        raise ValueError(f"config: seed must be an int, got {c.seed!r}")
    _checks.int_at_least("config: data.seed", c.data.seed, 0, allow_none=True)
    if not (isinstance(c.schedule.threshold, (int, float)) and 0 <= c.schedule.threshold < 1):
        raise ValueError(f"config: schedule.threshold must be a number in [0, 1), "
                         f"got {c.schedule.threshold!r}")
    if not (isinstance(c.optimizer.lr, (int, float)) and c.optimizer.lr > 0):
        raise ValueError(f"config: optimizer.lr must be a positive number, got {c.optimizer.lr!r}")
    if not 0 < c.schedule.factor <= 1:
        raise ValueError(f"config: schedule.factor must be in (0, 1], got {c.schedule.factor!r}")
    if not c.model.name or not isinstance(c.model.name, str):
        raise ValueError("config: model.name must name a model of jaxeq.models "
                         "(e.g. 'red_green_net')")
    if not c.data.name or not isinstance(c.data.name, str):
        raise ValueError("config: data.name must name a data set of jaxeq.data (e.g. 'red_green')")
    if c.data.val_split is None and (c.schedule.name == "plateau" or c.early_stopping_patience):
        raise ValueError("config: schedule.name='plateau' and early_stopping_patience need "
                         "data.val_split (validation loss); got data.val_split=None")
    if c.eval_batch_size is None:
        c.eval_batch_size = c.batch_size
    c.lock()
    return c


def data_seed(config) -> int:
    """The seed the data sets of a run are built with: ``data.seed``, else the run's ``seed``."""
    return int(config.seed if config.data.seed is None else config.data.seed)


def flatten_dotted(d: dict, prefix: str = "") -> dict:
    """A nested dict as ``{"a.b.c": leaf}``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def identity_diff(recorded: dict, now: dict) -> dict:
    """``{dotted key: (recorded, now)}`` where two JSON train configs would compute different
    numbers: runtime-only fields ignored; a field the recorded config lacks counts as its
    default (fields are added to the trainer with their old behaviour as the default)."""
    defaults = flatten_dotted(run_identity(json.loads(to_json(default_config()))))
    a = {**defaults, **flatten_dotted(run_identity(dict(recorded)))}
    b = flatten_dotted(run_identity(dict(now)))
    return {k: (a.get(k, "<missing>"), b.get(k, "<missing>"))
            for k in sorted(set(a) | set(b)) if a.get(k, "<missing>") != b.get(k, "<missing>")}


def to_json(config) -> str:
    """Canonical JSON of a config (sorted keys), as written to workdir/config.json."""
    return json.dumps(config.to_dict(), sort_keys=True, indent=1, default=str)


def run_identity(config_dict: dict) -> dict:
    """The part of a config that determines the numbers (RUNTIME_ONLY fields removed)."""
    return {k: v for k, v in config_dict.items() if k not in RUNTIME_ONLY}
