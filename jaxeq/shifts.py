"""Group actions on (N, *spatial, C) arrays: circular roll, zero-fill translate, crop, and the
band-limited (FFT) sub-pixel shift.

Every shift may be a traced array, so a whole batch of shifts runs through ``jax.vmap`` as one
compiled program.
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


def _real_shift_vector(shift: Any, ndim: int, dtype) -> jnp.ndarray:
    if isinstance(shift, (bool, np.bool_)):
        raise TypeError(f"shift must hold real numbers, got {shift!r}")
    if isinstance(shift, (int, float, np.integer, np.floating)):
        return jnp.full((ndim,), shift, dtype)
    arr = jnp.asarray(shift)
    if arr.dtype == jnp.bool_ or not (jnp.issubdtype(arr.dtype, jnp.integer)
                                      or jnp.issubdtype(arr.dtype, jnp.floating)):
        raise TypeError(f"shift must hold real numbers (one per spatial dim), got dtype "
                        f"{arr.dtype}")
    if arr.shape != (ndim,):
        raise ValueError(f"shift must have shape ({ndim},) (one entry per spatial dim), "
                         f"got shape {arr.shape}")
    return arr.astype(dtype)


def fractional_shift(x: Any, shift: Any) -> jnp.ndarray:
    """Band-limited circular translation of the spatial dims by a real ``shift`` (one entry per
    dim; may be traced): ``x`` is read as samples of its periodic trigonometric interpolant,
    which is moved by ``shift`` pixels and sampled again. Same direction as :func:`roll`.

    Per axis of size ``n`` the DFT bin ``k`` (``-n/2 <= k < n/2``) is multiplied by
    ``exp(-2 pi i k f / n)`` with ``f = shift - round(shift)`` in ``[-1/2, 1/2]``, and the
    result is rolled by the integer ``round(shift)``. For even ``n`` the Nyquist bin
    ``k = -n/2`` stands for the pair of frequencies ``+-n/2`` with half the amplitude each,
    so its factor is their average ``cos(pi f)``: real, which keeps the output real (the
    imaginary part is float noise and is dropped), and the combined factor
    ``(-1)^round(shift) cos(pi f)`` equals ``exp(-i pi shift)`` at every integer shift, so an
    integer ``shift`` gives exactly ``roll`` up to float error (``f = 0``: every factor is 1).
    Output dtype: ``x``'s float dtype (float32 for integer input).
    """
    ndim = _checks.spatial_rank("x", x)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    s = _real_shift_vector(shift, ndim, jnp.result_type(x.dtype, jnp.float32))
    whole = jnp.round(s)
    frac = s - whole
    axes = tuple(range(1, ndim + 1))
    spectrum = jnp.fft.fftn(x, axes=axes)
    for d in range(ndim):
        n = x.shape[d + 1]
        k = np.fft.fftfreq(n, 1.0 / n)  # integer frequencies, -n/2 at the Nyquist bin
        phase = jnp.exp(-2j * jnp.pi * jnp.asarray(k, frac.dtype) * frac[d] / n)
        if n % 2 == 0:
            phase = phase.at[n // 2].set(jnp.cos(jnp.pi * frac[d]).astype(phase.dtype))
        shape = [1] * x.ndim
        shape[d + 1] = n
        spectrum = spectrum * phase.reshape(shape)
    out = jnp.real(jnp.fft.ifftn(spectrum, axes=axes)).astype(x.dtype)
    return roll(out, whole.astype(jnp.int32))


def shift_grid(max_shift: int, ndim: int = 2, step: int = 1) -> jnp.ndarray:
    """All shifts in ``[-max_shift, max_shift]^ndim`` that are multiples of ``step``, as an
    ``(S, ndim)`` int32 array (row-major, zero shift included)."""
    max_shift = _checks.int_at_least("max_shift", max_shift, 0)
    ndim = _checks.int_at_least("ndim", ndim, 1)
    step = _checks.int_at_least("step", step, 1)
    axis = np.arange(-(max_shift // step) * step, max_shift + 1, step)
    grid = np.stack(np.meshgrid(*([axis] * ndim), indexing="ij"), axis=-1)
    return jnp.asarray(grid.reshape(-1, ndim), jnp.int32)
