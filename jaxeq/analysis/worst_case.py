"""Worst-case shift metrics of a classifier over a whole grid of shifts, in one jitted call.

The metrics are those Michaeli et al. (CVPR 2023, "Alias-Free Convnets: Fractional Shift
Invariance via Polynomial Activations") evaluate, as their ``shift_eval.py`` computes them:

- **worst-case accuracy** (their "adversarial grid" robust score): an image counts only if it
  is classified correctly unshifted AND at every shift of the grid;
- **MAC**, the mean absolute change of the top-class probability: with ``c`` the class the
  classifier predicts for the UNSHIFTED image and ``p = softmax(logits)``,
  ``|p_c(x) - p_c(g_s x)|``, averaged over the images (and here also over the shifts);
- **consistency**: the fraction of (image, shift) pairs whose top-1 class equals the unshifted
  one's;

plus a per-image **flip fraction** (the fraction of shifts whose top-1 class differs from the
unshifted one's) and a per-shift **flip map** (the fraction of images that flip at each shift,
laid out on the shift grid by :func:`shift_map`).

``labels=None`` takes the unshifted predictions as the labels: the clean accuracy is then 1 and
the worst-case accuracy is the fraction of images whose prediction never flips (the
"worst-case consistency", usable on untrained models and unlabelled data).

Every shifted copy goes through ``f`` in chunks of ``chunk_size`` shifts (``lax.map`` inside
one jitted program); each chunk keeps only the top-1 class and one probability per image, so
a 31x31 grid costs no more memory than one chunk. ``batching="batch"`` runs a chunk's copies as
one real batch of ``chunk * N`` images (fast for models, exact when ``f`` treats the images of
a batch independently: an eval-mode model); ``"vmap"`` vmaps ``f`` over the shifts (``f``
always sees a batch of N). The shifted inputs come from
:func:`jaxeq.analysis.engine.shifted_apply`, so every action of
:data:`jaxeq.analysis.engine.ACTIONS` works here.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq import _checks
from jaxeq.analysis.engine import (ACTIONS, _bytes_per_image, default_memory_budget,
                                   shifted_apply)
from jaxeq.analysis.precision import measure_jit

BATCHING = ("batch", "vmap")
# actions whose shifts are whole pixels (any other action of ACTIONS may take real shifts)
INTEGER_ACTIONS = ("roll", "translate")

__all__ = ["WorstCase", "shift_map", "shift_metrics", "worst_case_shifts"]


class WorstCase(NamedTuple):
    """Worst-case shift metrics; fractions in [0, 1], arrays as numpy."""
    clean_accuracy: float
    worst_case_accuracy: float
    consistency: float
    mac: float
    mac_per_shift: np.ndarray    # (S,) mean |p_c(x) - p_c(g_s x)| over the images
    flip_fraction: np.ndarray    # (N,) fraction of shifts that change the image's top-1 class
    flip_map: np.ndarray         # (S,) fraction of images whose top-1 class changes at shift s
    robust: np.ndarray           # (N,) bool: correct unshifted and at every shift


def shift_metrics(clean_logits: jnp.ndarray, shifted_pred: jnp.ndarray,
                  shifted_prob: jnp.ndarray, labels: jnp.ndarray) -> dict:
    """The metrics from the unshifted logits ``(N, K)``, the top-1 class ``(S, N)`` and the
    probability of the unshifted top-1 class ``(S, N)`` of every shifted copy, and the labels
    ``(N,)``. Pure and jit-able; returns a dict of jnp arrays (the fields of
    :class:`WorstCase`)."""
    top = jnp.argmax(clean_logits, axis=-1)
    p0 = _prob_of(clean_logits, top)
    correct = top == labels
    flips = shifted_pred != top[None]
    robust = correct & jnp.all(shifted_pred == labels[None], axis=0)
    change = jnp.abs(shifted_prob - p0[None])
    return {
        "clean_accuracy": jnp.mean(correct.astype(jnp.float32)),
        "worst_case_accuracy": jnp.mean(robust.astype(jnp.float32)),
        "consistency": 1.0 - jnp.mean(flips.astype(jnp.float32)),
        "mac": jnp.mean(change),
        "mac_per_shift": jnp.mean(change, axis=1),
        "flip_fraction": jnp.mean(flips.astype(jnp.float32), axis=0),
        "flip_map": jnp.mean(flips.astype(jnp.float32), axis=1),
        "robust": robust,
    }


def _prob_of(logits: jnp.ndarray, cls: jnp.ndarray) -> jnp.ndarray:
    """softmax(logits)[..., cls] for logits (..., N, K) and classes (N,)."""
    probs = jax.nn.softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), -1)
    idx = jnp.broadcast_to(cls[:, None], probs.shape[:-1] + (1,))
    return jnp.take_along_axis(probs, idx, axis=-1)[..., 0]


@functools.lru_cache(maxsize=32)
def _program(f: Callable, action: str, chunk: int, batched: bool, with_params: bool):
    """The jitted ``(params, x, labels, shifts) -> metrics`` for one ``f`` and settings (cached
    per f, so a sweep over batches, or over weights passed as ``params``, compiles once)."""
    move = shifted_apply(lambda v: v, action=action)  # (x, shifts) -> (k, N, ...) inputs

    def program(params, x, labels, shifts):
        call = (lambda v: f(params, v)) if with_params else f
        apply_shifted = shifted_apply(call, action=action)
        clean = call(x)
        top = jnp.argmax(clean, axis=-1)
        n = x.shape[0]

        def one_chunk(cs):
            if batched:
                xs = move(x, cs)
                ys = call(xs.reshape((-1,) + x.shape[1:]))
                ys = ys.reshape((cs.shape[0], n) + ys.shape[1:])
            else:
                ys = apply_shifted(x, cs)
            return jnp.argmax(ys, axis=-1), _prob_of(ys, top)

        rows = shifts.shape[0]
        n_chunks = -(-rows // chunk)
        k = -(-rows // n_chunks)  # as many chunks, evened out: < n_chunks padding rows
        pad = jnp.zeros((n_chunks * k - rows, shifts.shape[1]), shifts.dtype)
        padded = jnp.concatenate([shifts, pad]).reshape(n_chunks, k, -1)
        pred, prob = jax.lax.map(one_chunk, padded)
        pred = pred.reshape((-1, n))[:rows]
        prob = prob.reshape((-1, n))[:rows]
        return shift_metrics(clean, pred, prob, jnp.where(labels < 0, top, labels))

    return measure_jit(program)


def _check_inputs(x: Any, shifts: Any, labels: Any, action: str):
    ndim = _checks.spatial_rank("x", x)
    _checks.choice("action", action, ACTIONS)
    arr = np.asarray(shifts)
    if arr.ndim != 2 or arr.shape[1] != ndim or arr.shape[0] < 1:
        raise ValueError(f"shifts must have shape (S, {ndim}) with S >= 1 (one row per shift, "
                         f"one column per spatial dim of x), got shape {arr.shape}")
    if action in INTEGER_ACTIONS and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"shifts must be integers for action={action!r}, got dtype {arr.dtype}; "
                        f"build them with jaxeq.shift_grid")
    n = np.shape(x)[0]
    if labels is None:
        lab = np.full((n,), -1, np.int32)
    else:
        lab = np.asarray(labels)
        if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer) or np.any(lab < 0):
            raise ValueError(f"labels must be None or ({n},) non-negative integer class indices, "
                             f"got {lab.dtype} {lab.shape}")
    return jnp.asarray(x), jnp.asarray(lab, jnp.int32), jnp.asarray(arr)


def worst_case_shifts(f: Callable, x: Any, shifts: Any, *, labels: Any = None,
                      params: Any = None, action: str = "roll", chunk_size: int | None = None,
                      batching: str = "batch", memory_budget: int | None = None) -> WorstCase:
    """Worst-case accuracy, MAC, consistency and flip maps of the classifier ``f`` (images
    ``(N, *spatial, C)`` -> logits ``(N, K)``) over every shift in ``shifts`` ``(S, ndim)``.

    ``labels``: ``(N,)`` class indices, or None for the unshifted predictions (see the module
    docstring). ``params``: if given, ``f`` is called as ``f(params, x)`` (e.g. a flax
    ``model.apply`` with its variables) and the weights enter the jitted program as arguments,
    not as constants that XLA would fold at compile time. ``chunk_size``: shifts per chunk;
    left out, as many as ``memory_budget`` bytes hold by an estimate of ``f``'s working set
    per image (as :mod:`jaxeq.analysis.engine` chunks; default budget:
    :func:`jaxeq.analysis.engine.default_memory_budget`). ``batching``: "batch" (one real batch
    per chunk; ``f`` must treat images independently) or "vmap".
    """
    x, labels, shifts = _check_inputs(x, shifts, labels, action)
    _checks.choice("batching", batching, BATCHING)
    chunk = _checks.int_at_least("chunk_size", chunk_size, 1, allow_none=True)
    budget = _checks.int_at_least("memory_budget", memory_budget, 1, allow_none=True)
    call = f if params is None else functools.partial(f, params)
    logits = jax.eval_shape(call, x)
    if len(getattr(logits, "shape", ())) != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"f must map images {tuple(x.shape)} to logits (N, K) with "
                         f"N={x.shape[0]}, got {getattr(logits, 'shape', type(logits).__name__)}")
    if chunk is None:
        per_image = _bytes_per_image(lambda v: {"y": call(v)}, x)
        budget = default_memory_budget() if budget is None else budget
        chunk = max(1, budget // (per_image * x.shape[0]))
    chunk = min(chunk, shifts.shape[0])
    settings = (action, chunk, batching == "batch", params is not None)
    try:
        program = _program(f, *settings)
    except TypeError:  # an unhashable callable: no caching
        program = _program.__wrapped__(f, *settings)
    out = jax.device_get(program(params, x, labels, shifts))
    scalars = ("clean_accuracy", "worst_case_accuracy", "consistency", "mac")
    return WorstCase(**{k: (float(v) if k in scalars else v) for k, v in out.items()})


def shift_map(shifts: Any, values: Any) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Lay per-shift ``values`` ``(S,)`` out on the grid of the shifts: returns ``(grid,
    axes)``, ``grid[i, j]`` the value of the shift ``(axes[0][i], axes[1][j])`` (NaN where no
    shift of that offset was measured); ``axes`` holds the sorted distinct offsets per dim."""
    arr = np.asarray(shifts)
    vals = np.asarray(values, np.float64)
    if arr.ndim != 2 or vals.shape != (arr.shape[0],):
        raise ValueError(f"shifts must be (S, ndim) and values (S,), got {arr.shape} and "
                         f"{vals.shape}")
    axes = tuple(np.unique(arr[:, d]) for d in range(arr.shape[1]))
    grid = np.full(tuple(len(a) for a in axes), np.nan)
    index = tuple(np.searchsorted(a, arr[:, d]) for d, a in enumerate(axes))
    grid[index] = vals
    return grid, axes
