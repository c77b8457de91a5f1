"""HardNet's descriptor learning (Mishchuk et al. 2017, as in Kayhan & van Gemert's Exp4 patch
matching code): the loss, the optimizer, the learning-rate schedule, the metric and a jitted
train step. Pure functions; the training loop that drives them is
:mod:`jaxeq.experiments.patch_matching_train`.

- :func:`hardnet_loss`: the official ``Losses.loss_HardNet`` with its defaults used by
  ``HardNet_fconv.py`` (``batch_reduce='min'``, ``anchor_swap=True``, ``margin=1.0``,
  ``loss_type='triplet_margin'``): for a batch of matching descriptor pairs (a_i, p_i), the
  distance matrix D_ij = ||a_i - p_j||; the positive distance D_ii; the hardest negative
  min(min_j!=i D_ij, min_j!=i D_ji) (distances below 0.008 are treated as the same patch and
  skipped, as the original's mask); loss = mean(max(0, margin + D_ii - hardest negative)).
- :func:`sgd_dampened`: PyTorch ``SGD(momentum=0.9, dampening=0.9, weight_decay=1e-4)``:
  ``g += wd * p``; first step ``buf = g``, then ``buf = m * buf + (1 - dampening) * g``;
  the update is ``-lr * buf``.
- :func:`hardnet_lr`: the official ``adjust_learning_rate`` (Lua-SGD style linear decay),
  called after every optimizer step: steps 0 and 1 use ``lr``, step k >= 1 uses
  ``lr * (1 - (k - 1) * batch_size / (n_triplets * epochs))``.
- :func:`fpr_at_95_recall`: ``EvalMetrics.ErrorRateAt95Recall`` on distances (smaller =
  more alike): sort pairs by distance, take the shortest prefix holding 95% of the matches,
  return the fraction of all non-matches that lie inside that prefix.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxeq import xla_options

SAME_PATCH_DIST = 0.008   # the official mask: a "negative" this close is the same patch
DIAG_PENALTY = 10.0       # added to the diagonal and to masked entries before the min
MATRIX_EPS = 1e-6         # inside the sqrt of distance_matrix_vector
DIST_EPS = 1e-8           # added to the distance matrix by loss_HardNet


def distance_matrix(anchor, positive):
    """D_ij = sqrt(|a_i|^2 + |p_j|^2 - 2 a_i.p_j + 1e-6), the official ``distance_matrix_vector``."""
    a2 = jnp.sum(anchor * anchor, axis=1)[:, None]
    p2 = jnp.sum(positive * positive, axis=1)[None, :]
    return jnp.sqrt(a2 + p2 - 2.0 * anchor @ positive.T + MATRIX_EPS)


def hardnet_loss(anchor, positive, *, margin: float = 1.0, anchor_swap: bool = True):
    """HardNet's triplet margin loss with the hardest in-batch negative (module docstring).

    ``anchor``, ``positive``: (N, D) descriptors, row i of both from the same 3D point.
    """
    if anchor.ndim != 2 or anchor.shape != positive.shape:
        raise ValueError(f"anchor and positive must be (N, D) of one shape, got {anchor.shape} "
                         f"and {positive.shape}")
    dist = distance_matrix(anchor, positive) + DIST_EPS
    n = dist.shape[0]
    pos = jnp.diagonal(dist)
    off = dist + DIAG_PENALTY * jnp.eye(n, dtype=dist.dtype)
    off = off + DIAG_PENALTY * (off < SAME_PATCH_DIST).astype(dist.dtype)
    hardest = jnp.min(off, axis=1)
    if anchor_swap:
        hardest = jnp.minimum(hardest, jnp.min(off, axis=0))
    return jnp.mean(jnp.maximum(margin + pos - hardest, 0.0))


class DampenedTrace(NamedTuple):
    buf: Any
    started: jax.Array


def sgd_dampened(momentum: float = 0.9, dampening: float = 0.9,
                 weight_decay: float = 1e-4) -> optax.GradientTransformation:
    """The lr-free direction of PyTorch SGD with dampening (module docstring); the step
    multiplies it by ``-lr``."""
    def init(params):
        return DampenedTrace(jax.tree.map(jnp.zeros_like, params), jnp.zeros((), bool))

    def update(grads, state, params=None):
        g = jax.tree.map(lambda g, p: g + weight_decay * p, grads, params)
        buf = jax.tree.map(lambda b, g: jnp.where(state.started, momentum * b + (1.0 - dampening) * g, g),
                           state.buf, g)
        return buf, DampenedTrace(buf, jnp.ones((), bool))

    return optax.GradientTransformation(init, update)


def hardnet_lr(step, *, lr: float, batch_size: int, n_triplets: int, epochs: int):
    """The learning rate of optimizer step ``step`` (0-based) under the official decay."""
    k = jnp.maximum(jnp.asarray(step, jnp.float32) - 1.0, 0.0)
    return lr * (1.0 - k * batch_size / (float(n_triplets) * epochs))


def fpr_at_95_recall(labels, distances, recall: float = 0.95) -> float:
    """False-positive rate at ``recall`` of the matches (module docstring); labels 1 = match.

    Ties in distance keep the input order (a stable sort), as numpy's default quicksort does
    not promise; the official code's tie order is unspecified."""
    labels = np.asarray(labels).astype(np.int64).ravel()
    distances = np.asarray(distances, np.float64).ravel()
    if labels.shape != distances.shape or labels.size == 0:
        raise ValueError(f"labels and distances must be non-empty and of one length, got "
                         f"{labels.shape} and {distances.shape}")
    if not set(np.unique(labels)) <= {0, 1} or labels.sum() == 0 or labels.sum() == labels.size:
        raise ValueError("labels must be 0/1 with at least one match (1) and one non-match (0)")
    ordered = labels[np.argsort(distances, kind="stable")]
    cut = int(np.argmax(np.cumsum(ordered) >= recall * ordered.sum()))
    false_pos = int(np.sum(ordered[:cut] == 0))
    true_neg = int(np.sum(ordered[cut:] == 0))
    return false_pos / (false_pos + true_neg)


class TripletState(NamedTuple):
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


def create_state(model, tx, seed: int, patch_shape) -> TripletState:
    """Fresh parameters (``model.init`` with ``seed``) and optimizer state."""
    key = jax.random.PRNGKey(seed)
    variables = model.init(key, jnp.zeros((1, *patch_shape), jnp.float32), train=False)
    params = variables["params"]
    return TripletState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}),
                        tx.init(params), jax.random.fold_in(key, 1))


def make_train_step(model, tx, *, margin: float = 1.0, anchor_swap: bool = True):
    """A jitted ``step(state, anchors, positives, lr) -> (state, loss)``; ``lr`` is an argument
    (e.g. :func:`hardnet_lr` of ``state.step``), so one compiled step serves every schedule.

    Anchors and positives go through the network in two train-mode calls, as the official
    loop does (``model(data_a)``, ``model(data_p)``): each normalises with its own batch
    statistics and each updates the running statistics in turn; dropout draws differ."""
    if not margin > 0:
        raise ValueError(f"margin must be a positive number, got {margin!r}")

    def loss_fn(params, batch_stats, rng, anchors, positives):
        ka, kp = jax.random.split(rng)
        out_a, upd = model.apply({"params": params, "batch_stats": batch_stats}, anchors,
                                 train=True, mutable=["batch_stats"], rngs={"dropout": ka})
        out_p, upd = model.apply({"params": params, "batch_stats": upd["batch_stats"]}, positives,
                                 train=True, mutable=["batch_stats"], rngs={"dropout": kp})
        loss = hardnet_loss(out_a, out_p, margin=margin, anchor_swap=anchor_swap)
        return loss, upd["batch_stats"]

    @xla_options.jit
    def step(state: TripletState, anchors, positives, lr):
        rng = jax.random.fold_in(state.rng, state.step)
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.batch_stats, rng, anchors, positives)
        direction, opt_state = tx.update(grads, state.opt_state, state.params)
        params = jax.tree.map(lambda p, d: p - lr * d, state.params, direction)
        return TripletState(state.step + 1, params, stats, opt_state, state.rng), loss

    return step


def make_describe(model):
    """A jitted ``describe(params, batch_stats, patches) -> descriptors`` (eval mode)."""
    @xla_options.jit
    def describe(params, batch_stats, patches):
        return model.apply({"params": params, "batch_stats": batch_stats}, patches, train=False)
    return describe


def pair_distances(descriptors, pairs):
    """Euclidean distance of each (i, j) row of ``pairs`` between rows of ``descriptors``."""
    d = np.asarray(descriptors, np.float64)
    pairs = np.asarray(pairs, np.int64)
    return np.sqrt(np.sum((d[pairs[:, 0]] - d[pairs[:, 1]]) ** 2, axis=1))


__all__ = ["DampenedTrace", "TripletState", "create_state", "distance_matrix", "fpr_at_95_recall",
           "hardnet_loss", "hardnet_lr", "make_describe", "make_train_step", "pair_distances",
           "sgd_dampened"]
