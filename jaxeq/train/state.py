"""The train state: one pytree holding everything that changes during training.

Everything here is an array, so the whole state is donated to the train step, replicated over
the mesh and written to the checkpoint as is. The model and the optimizer (static code) are not
part of it. Metric accumulators live in the state too: they stay on device between steps, are
fetched once per log interval / epoch, and a run resumed mid-epoch continues them exactly.
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


def zero_metrics() -> dict:
    """Sums over examples: loss, correct top-1, count; plus the first non-finite step (-1: none)."""
    return {"loss_sum": jnp.zeros((), jnp.float32), "correct": jnp.zeros((), jnp.float32),
            "count": jnp.zeros((), jnp.float32), "nonfinite_step": jnp.full((), -1, jnp.int32)}


@flax.struct.dataclass
class TrainState:
    step: jax.Array          # int32, global optimizer steps taken
    params: Any
    batch_stats: Any         # {} for models without BatchNorm
    opt_state: Any
    rng: jax.Array           # uint32[2] raw key (portable in checkpoints); folded with step
    lr_factor: jax.Array     # float32, changed only by reduce-on-plateau
    epoch_metrics: dict      # accumulated since the start of the epoch
    log_metrics: dict        # accumulated since the last log line


def create(variables: dict, tx, rng: jax.Array) -> TrainState:
    """A fresh state from ``model.init`` output and the (lr-free) optimizer."""
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
                      rng=rng, lr_factor=jnp.ones((), jnp.float32),
                      epoch_metrics=zero_metrics(), log_metrics=zero_metrics())


def summarize(metrics: dict) -> dict:
    """Host-side means from fetched accumulators."""
    count = float(metrics["count"])
    return {"loss": float(metrics["loss_sum"]) / max(count, 1.0),
            "accuracy": float(metrics["correct"]) / max(count, 1.0), "count": int(count)}
