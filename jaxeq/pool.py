"""Pooling with the padding vocabulary of :mod:`jaxeq.padding`.

Max, average, global, BlurPool (Zhang 2019) and adaptive polyphase sampling (APS, Chaman &
Dokmanic 2021). Windows are padded explicitly, then reduced over a VALID window.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from jaxeq import _checks, kernels
from jaxeq.conv import conv
from jaxeq.padding import FILLS, padding_pairs, pad

# "neutral" pads with the reduction's identity (-inf for max), as PyTorch's max_pool does.
MAX_POOL_FILLS = ("neutral",) + FILLS
APS_NORMS = ("l1", "l2")


def _window(x: Any, window: Any, stride: Any, padding: Any):
    ndim = _checks.spatial_rank("x", x)
    win = _checks.positive_ints("window", window, ndim)
    strides = win if stride is None else _checks.positive_ints("stride", stride, ndim)
    pairs = padding_pairs(padding, win, stride=strides, input_size=np.shape(x)[1:-1], ndim=ndim)
    return ndim, win, strides, pairs


def _reduce(x, init, op, win, strides):
    # ``init`` must stay a concrete numpy scalar: a jnp array is traced under jit, and JAX can
    # then neither recognise the max/add monoid nor differentiate the window reduction.
    dims = (1,) + win + (1,)
    steps = (1,) + strides + (1,)
    return lax.reduce_window(x, init, op, dims, steps, "VALID")


def window_max(xp: jnp.ndarray, win: tuple[int, ...], strides: tuple[int, ...]) -> jnp.ndarray:
    """Max over VALID windows of the already padded ``xp``: the plain path of :func:`max_pool`
    (a backend's fast path from :mod:`jaxeq.kernels` may replace it, with the same values)."""
    return _reduce(xp, np.array(-np.inf, xp.dtype), lax.max, win, strides)


def max_pool(x: Any, window: Any, *, stride: Any = None, padding: Any = "valid",
             fill: str = "neutral") -> jnp.ndarray:
    """Max over windows. ``stride`` defaults to ``window``.

    ``fill="neutral"`` pads with -inf (PyTorch's ``max_pool``); any of the conv fills may be
    used instead ("zeros" matters only for inputs that can be negative). The gradient follows
    PyTorch's rule: each window's gradient goes to its first maximum (row-major), so ties are
    broken as torch breaks them.
    """
    _checks.choice("fill", fill, MAX_POOL_FILLS)
    _, win, strides, pairs = _window(x, window, stride, padding)
    x = jnp.asarray(x)
    xp = pad(x, pairs, "zeros", value=-jnp.inf) if fill == "neutral" else pad(x, pairs, fill)
    impl = kernels.select("max_pool") or window_max
    return impl(xp, tuple(win), tuple(strides))


def avg_pool(x: Any, window: Any, *, stride: Any = None, padding: Any = "valid",
             fill: str = "zeros", count_include_pad: bool = True) -> jnp.ndarray:
    """Mean over windows. ``stride`` defaults to ``window``.

    ``count_include_pad=False`` divides each window by the number of real (unpadded) input
    pixels in it, as PyTorch's flag of that name.
    """
    _checks.choice("fill", fill, FILLS)
    _, win, strides, pairs = _window(x, window, stride, padding)
    x = jnp.asarray(x)
    summed = _reduce(pad(x, pairs, fill), np.array(0, x.dtype), lax.add, win, strides)
    if count_include_pad:
        return summed / math.prod(win)
    ones = jnp.ones((1,) + x.shape[1:-1] + (1,), x.dtype)
    counts = _reduce(pad(ones, pairs, "zeros"), np.array(0, x.dtype), lax.add, win, strides)
    return summed / counts


def global_max_pool(x: Any) -> jnp.ndarray:
    """Max over all spatial dims: (N, *spatial, C) -> (N, C)."""
    ndim = _checks.spatial_rank("x", x)
    return jnp.max(jnp.asarray(x), axis=tuple(range(1, ndim + 1)))


def global_avg_pool(x: Any) -> jnp.ndarray:
    """Mean over all spatial dims: (N, *spatial, C) -> (N, C)."""
    ndim = _checks.spatial_rank("x", x)
    return jnp.mean(jnp.asarray(x), axis=tuple(range(1, ndim + 1)))


def binomial_filter(filter_size: int, ndim: int = 2) -> np.ndarray:
    """Normalised binomial filter (rows of Pascal's triangle), outer product over ``ndim``."""
    if isinstance(filter_size, bool) or not isinstance(filter_size, (int, np.integer)) \
            or not 1 <= filter_size <= 7:
        raise ValueError(f"filter_size must be an int in 1..7, got {filter_size!r}")
    row = np.array([math.comb(filter_size - 1, i) for i in range(filter_size)], np.float64)
    filt = row
    for _ in range(ndim - 1):
        filt = np.multiply.outer(filt, row)
    return filt / filt.sum()


def blur_pool(x: Any, *, filter_size: int = 3, stride: Any = 2, padding: Any = "same",
              fill: str = "reflect") -> jnp.ndarray:
    """Anti-aliased subsampling: a per-channel binomial blur, then stride (Zhang 2019).

    ``padding="same"`` with ``fill="reflect"`` is Zhang's BlurPool; ``padding="full"`` with
    ``fill="zeros"`` is the F-Conv blur of SPEC E3 (pad ``filter_size - 1`` each side).
    """
    ndim = _checks.spatial_rank("x", x)
    filt = binomial_filter(filter_size, ndim)
    x = jnp.asarray(x)
    channels = x.shape[-1]
    kernel = jnp.broadcast_to(jnp.asarray(filt, x.dtype)[..., None, None],
                              filt.shape + (1, channels))
    return conv(x, kernel, stride=stride, padding=padding, fill=fill, groups=channels)


def polyphase_components(x: Any, stride: Any = 2) -> jnp.ndarray:
    """All ``prod(stride)`` subsampling grids of ``x``, stacked on a new leading axis.

    Component ``i`` (row-major over the per-dim offsets) is ``x[:, o0::s0, o1::s1, ..., :]``.
    Every spatial size must be a multiple of its stride.
    """
    ndim = _checks.spatial_rank("x", x)
    strides = _checks.positive_ints("stride", stride, ndim)
    x = jnp.asarray(x)
    sizes = x.shape[1:-1]
    if any(n % s for n, s in zip(sizes, strides)):
        raise ValueError(f"polyphase sampling needs every spatial size {sizes} to be a multiple "
                         f"of stride {strides}; pad or crop the input first")
    comps = []
    for offsets in np.ndindex(*strides):
        index = (slice(None),) + tuple(slice(o, None, s) for o, s in zip(offsets, strides))
        comps.append(x[index])
    return jnp.stack(comps)


def aps_pool(x: Any, *, stride: Any = 2, norm: str = "l2") -> jnp.ndarray:
    """Adaptive polyphase sampling: keep, per sample, the polyphase component of largest norm.

    A circular shift of the input permutes the components and rolls them, so the chosen one
    is a circular shift of the unshifted choice: stacks of circular convs and ``aps_pool``
    followed by global pooling are exactly invariant to integer circular shifts (ties between
    equal norms aside). Norms: "l2" (default) or "l1", over all spatial positions and channels.
    """
    _checks.choice("norm", norm, APS_NORMS)
    comps = polyphase_components(x, stride)  # (P, N, *spatial/s, C)
    axes = tuple(range(2, comps.ndim))
    if norm == "l2":
        energy = jnp.sum(jnp.square(comps), axis=axes)
    else:
        energy = jnp.sum(jnp.abs(comps), axis=axes)
    best = jnp.argmax(jax.lax.stop_gradient(energy), axis=0)  # (N,)
    batch = jnp.arange(comps.shape[1])
    return comps[best, batch]
