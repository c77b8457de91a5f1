"""Pure train and eval steps, jitted once per input shape with explicit shardings.

``train_step(state, batch) -> state`` and ``eval_step(state, batch, metrics) -> metrics`` are
pure functions of arrays. The state is donated (updated in place), batches are global arrays
sharded over the mesh's 'data' axis and the state is replicated, so XLA's partitioner inserts
the gradient all-reduce.

BatchNorm over the global batch: under jit with a sharded batch, the batch mean and variance
in BatchNorm are reductions over the whole (global) batch axis, so the statistics are those of
the global batch on any number of devices or hosts (what PyTorch calls SyncBatchNorm). The
result is therefore independent of the device count. Per-device BN (PyTorch
DistributedDataParallel without SyncBN, or ``pmap`` without an ``axis_name``) normalises each
device's shard by its own statistics instead: with b examples per device it trains a slightly
different model that depends on the device count, and its running variance is the mean of
per-shard variances, which misses the between-shard spread.

A non-finite loss or gradient norm does not update the state: the step is recorded in
``metrics['nonfinite_step']`` (first occurrence) and the host stops the run when it next looks,
so the state it reports, and any checkpoint, is the last finite one.
"""
from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import optax

from jaxeq import xla_options
from jaxeq.data import to_model_input

# Python-side trace counters, for tests that check "compiled once per shape".
TRACE_COUNTS: collections.Counter = collections.Counter()


def _accumulate(metrics, per_example_loss, logits, labels, mask):
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32) * mask
    return {**metrics,
            "loss_sum": metrics["loss_sum"] + jnp.sum(per_example_loss * mask),
            "correct": metrics["correct"] + jnp.sum(correct),
            "count": metrics["count"] + jnp.sum(mask)}


def make_train_step(model, tx, lr_fn, *, update_batch_stats: bool, train_mode: bool,
                    trainable: str = "all"):
    """The pure train step.

    ``train_mode``: the ``train`` flag passed to the model (False freezes BatchNorm entirely:
    running statistics are used and not updated). ``update_batch_stats``: whether the model
    has BatchNorm statistics to update in train mode. ``trainable``: "all", or "head" (only
    ``params['head']`` is differentiated: the frozen body's backward pass is never built, which
    is most of the step's work; its gradients are zeros, as the optimizer would make them).
    """
    if trainable not in ("all", "head"):
        raise ValueError(f"trainable={trainable!r} is not one of ['all', 'head']")

    def value_and_grad(loss_fn, params):
        if trainable == "all":
            return jax.value_and_grad(loss_fn, has_aux=True)(params)
        params = dict(params)
        out, head_grads = jax.value_and_grad(
            lambda head: loss_fn({**params, "head": head}), has_aux=True)(params["head"])
        grads = {k: (head_grads if k == "head" else jax.tree.map(jnp.zeros_like, v))
                 for k, v in params.items()}
        return out, grads

    def train_step(state, batch):
        TRACE_COUNTS["train_step"] += 1
        x = to_model_input(batch["image"])
        labels = batch["label"]
        mask = batch["mask"].astype(jnp.float32)
        rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(params):
            variables = {"params": params}
            if update_batch_stats:
                variables["batch_stats"] = state.batch_stats
            if update_batch_stats and train_mode:
                logits, new = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                          rngs={"dropout": rng})
                batch_stats = new["batch_stats"]
            else:
                logits = model.apply(variables, x, train=train_mode, rngs={"dropout": rng})
                batch_stats = state.batch_stats
            # loss in float32 for low-precision compute, float64 for a float64 model
            logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
            per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
            loss = jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)
            return loss, (per_example, logits, batch_stats)

        (loss, (per_example, logits, batch_stats)), grads = value_and_grad(loss_fn, state.params)
        direction, opt_state = tx.update(grads, state.opt_state, state.params)
        lr = lr_fn(state.step) * state.lr_factor
        params = jax.tree.map(lambda p, d: (p - lr * d).astype(p.dtype), state.params, direction)

        finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)

        def account(m):
            m = _accumulate(m, jnp.where(finite, per_example, 0.0), logits, labels,
                            mask * finite.astype(jnp.float32))
            first_bad = (m["nonfinite_step"] < 0) & ~finite
            return {**m, "nonfinite_step": jnp.where(first_bad, state.step, m["nonfinite_step"])}

        return state.replace(
            step=state.step + 1,
            params=keep(params, state.params),
            batch_stats=keep(batch_stats, state.batch_stats),
            opt_state=keep(opt_state, state.opt_state),
            epoch_metrics=account(state.epoch_metrics),
            log_metrics=account(state.log_metrics))

    return train_step


def make_eval_step(model, has_batch_stats: bool):
    """The pure eval step: ``(state, batch, metrics) -> metrics`` (masked sums)."""
    def eval_step(state, batch, metrics):
        TRACE_COUNTS["eval_step"] += 1
        variables = {"params": state.params}
        if has_batch_stats:
            variables["batch_stats"] = state.batch_stats
        logits = model.apply(variables, to_model_input(batch["image"]), train=False)
        logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
        per_example = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        return _accumulate(metrics, per_example, logits, batch["label"],
                           batch["mask"].astype(jnp.float32))

    return eval_step


def jit_steps(train_step, eval_step, mesh_info):
    """Jit both steps with the state replicated and batches sharded; the state is donated."""
    rep, data = mesh_info.replicated, mesh_info.batch_sharding
    train = xla_options.jit(train_step, in_shardings=(rep, data), out_shardings=rep,
                            donate_argnums=0)
    evaluate = xla_options.jit(eval_step, in_shardings=(rep, data, rep), out_shardings=rep,
                               donate_argnums=2)
    return train, evaluate
