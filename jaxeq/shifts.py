"""Group actions on (N, *spatial, C) arrays: circular roll, zero-fill translate, crop.

Every shift may be a traced integer array, so a whole batch of shifts runs through
``jax.vmap`` as one compiled program.
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax
import numpy as np

from jaxeq import _checks


def _shift_vector(shift: Any, ndim: int, name: str = "shift") -> jnp.ndarray:
    if isinstance(shift, (bool, np.bool_)):
        raise TypeError(f"{name} must hold integers, got {shift!r}")
    if isinstance(shift, (int, np.integer)):
        return jnp.full((ndim,), shift, jnp.int32)
    if isinstance(shift, (list, tuple)) and any(isinstance(v, float) for v in shift):
        raise TypeError(f"{name} must hold integers, got {shift!r}")
    arr = jnp.asarray(shift)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integers (one per spatial dim), got dtype {arr.dtype}")
    if arr.shape != (ndim,):
        raise ValueError(f"{name} must have shape ({ndim},) (one entry per spatial dim), "
                         f"got shape {arr.shape}")
    return arr.astype(jnp.int32)


def roll(x: Any, shift: Any) -> jnp.ndarray:
    """Circular shift of the spatial dims by ``shift`` (one int per dim; may be traced)."""
    ndim = _checks.spatial_rank("x", x)
    s = _shift_vector(shift, ndim)
    x = jnp.asarray(x)
    for d in range(ndim):
        x = jnp.roll(x, s[d], axis=d + 1)
    return x


def translate(x: Any, shift: Any, fill_value: float = 0.0) -> jnp.ndarray:
    """Move the content by ``shift`` pixels; vacated pixels get ``fill_value``; content that
    leaves the canvas is lost. ``shift`` may be traced; shifts beyond the size empty the canvas.
    """
    ndim = _checks.spatial_rank("x", x)
    s = _shift_vector(shift, ndim)
    x = jnp.asarray(x)
    sizes = x.shape[1:-1]
    # Pad by the full size on each side, then slice: one dynamic_slice for any shift.
    widths = ((0, 0),) + tuple((n, n) for n in sizes) + ((0, 0),)
    padded = jnp.pad(x, widths, constant_values=fill_value)
    start = [jnp.int32(0)] + [jnp.clip(n - s[d], 0, 2 * n) for d, n in enumerate(sizes)] + \
        [jnp.int32(0)]
    return lax.dynamic_slice(padded, start, x.shape)


def crop(x: Any, offset: Any, size: Any) -> jnp.ndarray:
    """The ``size`` window starting at ``offset`` (may be traced; a concrete offset is checked
    to lie inside the image, a traced one is clamped into it as ``lax.dynamic_slice`` does)."""
    ndim = _checks.spatial_rank("x", x)
    sizes = _checks.positive_ints("size", size, ndim)
    x = jnp.asarray(x)
    image = x.shape[1:-1]
    if any(c > n for c, n in zip(sizes, image)):
        raise ValueError(f"size {sizes} is larger than the image {image}")
    off = _shift_vector(offset, ndim, "offset")
    try:
        concrete = np.asarray(off)
    except Exception:  # traced offsets cannot be checked here
        concrete = None
    if concrete is not None:
        if np.any(concrete < 0) or np.any(concrete + np.array(sizes) > np.array(image)):
            raise ValueError(f"crop at offset {concrete.tolist()} of size {sizes} lies outside "
                             f"the image {image}")
    start = [jnp.int32(0)] + [off[d] for d in range(ndim)] + [jnp.int32(0)]
    return lax.dynamic_slice(x, start, (x.shape[0],) + sizes + (x.shape[-1],))


def shift_grid(max_shift: int, ndim: int = 2, step: int = 1) -> jnp.ndarray:
    """All shifts in ``[-max_shift, max_shift]^ndim`` that are multiples of ``step``, as an
    ``(S, ndim)`` int32 array (row-major, zero shift included)."""
    max_shift = _checks.int_at_least("max_shift", max_shift, 0)
    ndim = _checks.int_at_least("ndim", ndim, 1)
    step = _checks.int_at_least("step", step, 1)
    axis = np.arange(-(max_shift // step) * step, max_shift + 1, step)
    grid = np.stack(np.meshgrid(*([axis] * ndim), indexing="ij"), axis=-1)
    return jnp.asarray(grid.reshape(-1, ndim), jnp.int32)
