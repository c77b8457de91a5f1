"""Train-mode BatchNorm with a hand-written backward pass.

Same maths as autodiff of the statistics in :class:`jaxeq.nn.BatchNorm`'s plain path, arranged
for XLA:CPU: the forward needs one pass for the two sums and one multiply-add; the backward one
pass for two sums and one elementwise expression. Reductions run as partial sums over row blocks
(:func:`channel_sum`), which XLA:CPU executes faster than one long column reduction over N*H*W
rows.

On XLA:CPU (:func:`batch_norm_train_cpu`) the backward's two sums are a GEMV against a row of
ones instead. XLA:CPU fuses an elementwise producer into every reduction that reads it; dy's
producers are the ReLU masks and residual adds of the blocks above (with F-Conv's shortcut
crops, slices too), so each BatchNorm's reduction recomputed that chain through several blocks,
as a slow column reduction (ResNet-50 F-Conv, 112 px, batch 8: 1.3 of 3.8 s per step; BENCHMARKS.md "BatchNorm's
backward sums"). XLA never fuses a producer into a dot, so dy is computed once.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Array = Any

SUM_BLOCKS = 16


def channel_sum(a: Array) -> Array:
    """Sum of an (M, C) array over its rows, shape (1, C), as ``SUM_BLOCKS`` partial sums."""
    m, c = a.shape
    p = SUM_BLOCKS
    while m % p:
        p //= 2
    return jnp.sum(jnp.sum(a.reshape(p, m // p, c), 1), 0, keepdims=True)


def _stats(x2: Array):
    """(k, mean, var), each (1, C), of (M, C) ``x2``; one pass, shifted by the first row ``k``
    (var = E[(x-k)^2] - E[x-k]^2 for any constant k; k near the data avoids cancellation)."""
    m = x2.shape[0]
    k = lax.stop_gradient(x2[:1])
    xs = x2 - k
    mean_s = channel_sum(xs) / m
    mean_sq = channel_sum(xs * xs) / m
    return k, k + mean_s, jnp.maximum(mean_sq - mean_s * mean_s, 0.0)


GEMV_ROWS = (128, 512)   # rows per GEMV block: short blocks round like the blocked sums


def row_sum_gemv(a: Array) -> Array:
    """Sum of an (M, C) array over its rows, shape (1, C): one GEMV ones @ block per block of
    rows (one batched dot), then the sum of those. Blocks of 128-512 rows keep float32 rounding
    at the blocked reduction's (one long GEMV: 10-50x more). The block is the largest divisor
    of M in that range; without one, the rows are zero-padded to blocks of 256 (a copy)."""
    m, c = a.shape
    lo, hi = GEMV_ROWS
    rows = next((r for r in range(min(hi, m), lo - 1, -1) if m % r == 0), None)
    if rows is None:
        rows = min(256, m)
        a = jnp.pad(a, ((0, -m % rows), (0, 0)))
    p = a.shape[0] // rows
    ones = jnp.ones((p, 1, rows), a.dtype)
    partial_sums = lax.dot_general(ones, a.reshape(p, rows, c), (((2,), (1,)), ((0,), (0,))),
                                   precision=lax.Precision.HIGHEST)
    return jnp.sum(partial_sums, 0)


ROW_SUMS = {"blocks": channel_sum, "gemv": row_sum_gemv}


def batch_norm_train(x: Array, scale: Array, bias: Array, eps: float):
    """(normalised and scaled x, batch mean, biased batch variance) over all axes but the last."""
    return _batch_norm(x, scale, bias, eps, "blocks")


GEMV_MIN_CHANNELS = 256


def batch_norm_train_cpu(x: Array, scale: Array, bias: Array, eps: float):
    """:func:`batch_norm_train` whose backward sums are GEMVs from ``GEMV_MIN_CHANNELS``
    channels on (module docstring). Narrower layers sit early in a net, where dy's producers
    are cheap to recompute but many to materialise (a stride-2 max-pool's gradient is 9 padded
    terms): there the blocked sums were faster (measured, BENCHMARKS.md)."""
    wide = x.shape[-1] >= GEMV_MIN_CHANNELS
    return _batch_norm(x, scale, bias, eps, "gemv" if wide else "blocks")


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _batch_norm(x, scale, bias, eps, backward_sums):
    return _fwd(x, scale, bias, eps, backward_sums)[0]


def _fwd(x, scale, bias, eps, backward_sums):
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    k, mean, var = _stats(x2)
    rstd = lax.rsqrt(var + eps)
    mul = scale.reshape(1, c) * rstd
    y = (x2 * mul + (bias.reshape(1, c) - mean * mul)).reshape(x.shape)
    return (y, mean.reshape(c), var.reshape(c)), (x, k, mean, rstd, scale)


def _bwd(eps, backward_sums, res, g):
    x, k, mean, rstd, scale = res
    gy, gmean, gvar = g
    c = x.shape[-1]
    x2, dy = x.reshape(-1, c), gy.reshape(-1, c)
    m = x2.shape[0]
    row_sum = ROW_SUMS[backward_sums]
    s_dy = row_sum(dy)
    # sum(dy * (x - mean)) from the shifted sum: sum(dy (x - k)) - (mean - k) sum(dy).
    s_dyxc = row_sum(dy * (x2 - k)) - (mean - k) * s_dy
    mul = scale.reshape(1, c) * rstd
    gmean, gvar = gmean.reshape(1, c), gvar.reshape(1, c)
    # d/dx of y = (x - mean) * mul + bias, through mean and var too; plus the (normally zero)
    # cotangents of the returned mean and variance.
    coef = mul * rstd * rstd * s_dyxc / m - 2.0 * gvar / m
    dx = mul * dy - coef * (x2 - mean) + (gmean - mul * s_dy) / m
    return dx.reshape(x.shape), (s_dyxc * rstd).reshape(c), s_dy.reshape(c)


_batch_norm.defvjp(_fwd, _bwd)
