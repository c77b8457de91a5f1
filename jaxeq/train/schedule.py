"""Learning-rate schedules and the epoch-level decisions (best checkpoint, plateau, early
stopping).

The learning rate used at a step is ``base_lr(step) * lr_factor``: ``base_lr`` is a pure jnp
function of the global step (constant, step, cosine), evaluated inside the compiled train step;
``lr_factor`` is a scalar in the train state that only reduce-on-plateau changes, on the host,
between epochs. So no schedule ever triggers a recompile, and both parts are checkpointed.

The host-side decisions are plain dataclasses that round-trip through JSON (the checkpoint's
metadata), so a resumed run takes exactly the decisions an uninterrupted run would.
"""
from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp


def base_lr_fn(sched, lr: float, steps_per_epoch: int, epochs: int):
    """``step -> lr`` before the plateau factor, as a jnp function (traceable)."""
    if sched.name in ("constant", "plateau"):
        return lambda step: jnp.asarray(lr, jnp.float32)
    if sched.name == "step":
        every = sched.step_epochs * steps_per_epoch

        def step_lr(step):
            return lr * jnp.asarray(sched.factor, jnp.float32) ** (step // every)
        return step_lr
    if sched.name == "cosine":
        total = max(1, epochs * steps_per_epoch)

        def cosine_lr(step):
            t = jnp.minimum(step, total).astype(jnp.float32) / total
            return jnp.asarray(lr, jnp.float32) * 0.5 * (1.0 + jnp.cos(math.pi * t))
        return cosine_lr
    raise ValueError(f"schedule.name={sched.name!r} is not one of "
                     "['constant', 'step', 'cosine', 'plateau']")


@dataclasses.dataclass
class Plateau:
    """PyTorch's ReduceLROnPlateau(mode='min', relative ``threshold``, cooldown=0); threshold 0
    is a plain strict improvement, as the paper's own plateau loop (E1)."""
    best: float = math.inf
    bad_epochs: int = 0
    threshold: float = 1e-4

    def update(self, val_loss: float, patience: int) -> bool:
        """Record one epoch's val loss; True when the lr should be reduced now."""
        if val_loss < self.best * (1.0 - self.threshold):
            self.best, self.bad_epochs = val_loss, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > patience:
            self.bad_epochs = 0
            return True
        return False


@dataclasses.dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs in a row without a (strict) val-loss improvement."""
    best: float = math.inf
    bad_epochs: int = 0

    def update(self, val_loss: float, patience: int | None) -> bool:
        """Record one epoch's val loss; True when training should stop."""
        if val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
        else:
            self.bad_epochs += 1
        return patience is not None and self.bad_epochs >= patience


def improves(best: dict | None, val: dict, best_by: str = "val_loss") -> bool:
    """Whether validation result ``val`` replaces the ``best`` so far (None: nothing yet):
    strictly lower loss (``val_loss``) or strictly higher top-1 (``val_accuracy``)."""
    if best is None:
        return True
    if best_by == "val_accuracy":
        return val["accuracy"] > best["accuracy"]
    return val["loss"] < best["loss"]


@dataclasses.dataclass
class Decisions:
    """What the validation loss decides after each epoch: reduce the lr (reduce-on-plateau)
    and stop early. Checkpointed as the metadata's ``plateau`` and ``early`` entries."""
    plateau: Plateau
    early: EarlyStopping

    @classmethod
    def fresh(cls, schedule) -> Decisions:
        """Nothing seen yet (``schedule``: the config's schedule section)."""
        return cls(Plateau(threshold=float(schedule.threshold)), EarlyStopping())

    def update(self, val_loss: float, schedule, early_stopping_patience: int | None
               ) -> tuple[bool, bool]:
        """Record one epoch's val loss; ``(reduce_lr, stop_early)``. The plateau counts epochs
        only under ``schedule.name == 'plateau'``."""
        reduce_lr = schedule.name == "plateau" and self.plateau.update(val_loss, schedule.patience)
        return reduce_lr, self.early.update(val_loss, early_stopping_patience)

    def to_meta(self) -> dict:
        return {"plateau": to_dict(self.plateau), "early": to_dict(self.early)}

    @classmethod
    def from_meta(cls, meta: dict) -> Decisions:
        return cls(from_dict(Plateau, meta["plateau"]), from_dict(EarlyStopping, meta["early"]))


def to_dict(obj) -> dict:
    """JSON-safe dict (inf written as a string, which JSON lacks)."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in dataclasses.asdict(obj).items()}


def from_dict(cls, d: dict):
    """Inverse of :func:`to_dict`."""
    return cls(**{k: (float(v) if isinstance(v, str) else v) for k, v in d.items()})
