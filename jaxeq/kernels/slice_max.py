"""Max pooling as an elementwise max over the window's strided slices.

Same values as ``lax.reduce_window`` with ``lax.max`` (:func:`jaxeq.pool.window_max`), with
PyTorch's gradient rule written out: each window's gradient goes to its first maximum in
row-major order, so ties (e.g. the zeros after a ReLU) are broken exactly as torch breaks them.
XLA:CPU fuses both directions into a few multi-threaded loops, where the ``reduce_window`` form's
gradient is a ``select_and_scatter`` (BENCHMARKS.md).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np


def max_pool(xp: jnp.ndarray, win: tuple[int, ...], strides: tuple[int, ...]) -> jnp.ndarray:
    """Max over VALID windows of the already padded ``xp`` (N, *spatial, C)."""
    return _slice_max(xp, tuple(win), tuple(strides))


def window_slices(xp: jnp.ndarray, win: tuple[int, ...],
                  strides: tuple[int, ...]) -> list[jnp.ndarray]:
    """The strided views ``xp[:, o0::s0, o1::s1, ..., :]`` (cropped to the output size), one per
    window offset ``o`` in row-major order."""
    out_size = [(n - k) // s + 1 for n, k, s in zip(xp.shape[1:-1], win, strides)]
    views = []
    for offs in np.ndindex(*win):
        start = (0,) + offs + (0,)
        limit = (xp.shape[0],) + tuple(o + (m - 1) * s + 1 for o, m, s
                                       in zip(offs, out_size, strides)) + (xp.shape[-1],)
        views.append(lax.slice(xp, start, limit, (1,) + strides + (1,)))
    return views


@partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _slice_max(xp: jnp.ndarray, win: tuple[int, ...], strides: tuple[int, ...]) -> jnp.ndarray:
    views = window_slices(xp, win, strides)
    out = views[0]
    for v in views[1:]:
        out = jnp.maximum(out, v)
    return out


@_slice_max.defjvp
def _slice_max_jvp(win, strides, primals, tangents):
    # Each window passes on the tangent of its first maximum in row-major order. The rule is
    # linear in the tangent, so JAX transposes it into the gradient: PyTorch's rule (the
    # window's gradient goes to that same first maximum), and forward mode (jax.jvp) works too.
    (xp,), (dxp,) = primals, tangents
    out = _slice_max(xp, win, strides)
    taken = jnp.zeros(out.shape, bool)
    dout = jnp.zeros(out.shape, dxp.dtype)
    for v, dv in zip(window_slices(xp, win, strides), window_slices(dxp, win, strides)):
        hit = (v == out) & ~taken
        taken = taken | hit
        dout = dout + jnp.where(hit, dv, jnp.zeros((), dxp.dtype))
    return out, dout
