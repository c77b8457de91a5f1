"""Train-mode BatchNorm with a hand-written backward pass.

Same maths as autodiff of the statistics in :class:`jaxeq.nn.BatchNorm`'s plain path, arranged
for XLA:CPU: the forward needs one pass for the two sums and one multiply-add; the backward one
pass for two sums and one elementwise expression. Reductions run as partial sums over row blocks
(:func:`channel_sum`), which XLA:CPU executes faster than one long column reduction over N*H*W
rows.
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


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: Array, scale: Array, bias: Array, eps: float):
    """(normalised and scaled x, batch mean, biased batch variance) over all axes but the last."""
    return _fwd(x, scale, bias, eps)[0]


def _fwd(x, scale, bias, eps):
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    k, mean, var = _stats(x2)
    rstd = lax.rsqrt(var + eps)
    mul = scale.reshape(1, c) * rstd
    y = (x2 * mul + (bias.reshape(1, c) - mean * mul)).reshape(x.shape)
    return (y, mean.reshape(c), var.reshape(c)), (x, k, mean, rstd, scale)


def _bwd(eps, res, g):
    x, k, mean, rstd, scale = res
    gy, gmean, gvar = g
    c = x.shape[-1]
    x2, dy = x.reshape(-1, c), gy.reshape(-1, c)
    m = x2.shape[0]
    s_dy = channel_sum(dy)
    # sum(dy * (x - mean)) from the shifted sum: sum(dy (x - k)) - (mean - k) sum(dy).
    s_dyxc = channel_sum(dy * (x2 - k)) - (mean - k) * s_dy
    mul = scale.reshape(1, c) * rstd
    gmean, gvar = gmean.reshape(1, c), gvar.reshape(1, c)
    # d/dx of y = (x - mean) * mul + bias, through mean and var too; plus the (normally zero)
    # cotangents of the returned mean and variance.
    coef = mul * rstd * rstd * s_dyxc / m - 2.0 * gvar / m
    dx = mul * dy - coef * (x2 - mean) + (gmean - mul * s_dy) / m
    return dx.reshape(x.shape), (s_dyxc * rstd).reshape(c), s_dy.reshape(c)


batch_norm_train.defvjp(_fwd, _bwd)
