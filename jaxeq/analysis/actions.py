"""The group actions the measurements use, the expected output under each, and the argument
checks shared by :mod:`jaxeq.analysis.engine` and the modules built on it.

- ``"roll"``: circular shift (:func:`jaxeq.roll`) by integer shifts;
- ``"translate"``: zero-fill translation (:func:`jaxeq.translate`) by integer shifts; the
  output pixels the translation vacates have no expected value and are masked out;
- ``"fractional"``: band-limited circular shift (:func:`jaxeq.fractional_shift`) by real
  shifts; the expected output is ``f(x)`` moved by ``shift / out_stride`` (a real number, so
  every shift has an expected output: none is outside the subgroup).

Only ``"fractional"`` accepts non-integer shifts; the integer actions refuse them with a
``TypeError`` (never silently rounded).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq import _checks
from jaxeq.shifts import fractional_shift, roll, translate

ACTIONS = ("roll", "translate", "fractional")
# actions whose shifts wrap around (the input size must be a multiple of out_stride)
CIRCULAR = ("roll", "fractional")
BATCHING = ("auto", "batch", "vmap")
METRICS = ("relative", "l2", "max_abs")


def act(x, s, action: str):
    """``x`` moved by the shift vector ``s`` under ``action``."""
    if action == "roll":
        return roll(x, s)
    if action == "fractional":
        return fractional_shift(x, s)
    return translate(x, s)


def expected(ref, s, stride, action: str):
    """``(expected output, valid mask, in_group)`` for the output ``ref`` of the unshifted input
    and the input shift ``s``; ``stride`` is the output's stride (a tuple of ints)."""
    dtype = ref.dtype
    if action == "fractional":
        t = s.astype(jnp.result_type(dtype, jnp.float32)) / jnp.asarray(stride, s.dtype)
        return fractional_shift(ref, t), jnp.ones((), dtype), jnp.bool_(True)
    step = jnp.asarray(stride, jnp.int32)
    in_group = jnp.all(s % step == 0)
    t = s // step
    if action == "roll":
        return roll(ref, t), jnp.ones((), dtype), in_group
    valid = translate(jnp.ones((1,) + ref.shape[1:-1] + (1,), dtype), t)
    return translate(ref, t), valid, in_group


def format_shift(shift) -> tuple:
    """A shift row as a tuple of Python ints (integer actions) or floats to 6 significant
    digits (fractional: float32 shifts print as typed, -1.3 and not -1.2999999523)."""
    row = np.asarray(shift)
    if np.issubdtype(row.dtype, np.integer):
        return tuple(int(v) for v in row)
    return tuple(float(f"{float(v):.6g}") for v in row)


def off_subgroup(shifts, strides: tuple, action: str) -> np.ndarray:
    """The shift rows outside the subgroup of multiples of ``strides`` (none for fractional)."""
    host = np.asarray(shifts)
    if action == "fractional":
        return host[:0]
    return host[np.any(host % np.asarray(strides) != 0, axis=1)]


# ----------------------------------------------------------------------------- validation

def check_shifts(shifts: Any, ndim: int, action: str = "roll", dtype=jnp.float32) -> Any:
    """An ``(S, ndim)`` shift array: int32 for the integer actions; for ``"fractional"`` any
    real array, as the float type of ``dtype`` (float32 at least). A numpy (or nested list)
    input stays on the host and a jax array where it is: the engine reads the shifts on the
    host and passes them to its program, so a round trip through the device would be waste."""
    arr = shifts if isinstance(shifts, jax.Array) else np.asarray(shifts)
    real = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if action == "fractional":
        if arr.dtype == bool or not real:
            raise TypeError(f"shifts must be a real array of shape (S, {ndim}) for "
                            f"action='fractional', got dtype {arr.dtype}")
    elif arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"shifts must be an integer array of shape (S, {ndim}) for "
                        f"action={action!r}, got dtype {arr.dtype}; build one with "
                        f"jaxeq.shift_grid, or use action='fractional' for real shifts")
    if arr.ndim != 2 or arr.shape[1] != ndim or arr.shape[0] < 1:
        raise ValueError(f"shifts must have shape (S, {ndim}) with S >= 1 (one row per shift, "
                         f"one column per spatial dim of x), got shape {tuple(arr.shape)}")
    want = (np.dtype(jnp.result_type(dtype, jnp.float32)) if action == "fractional"
            else np.dtype(np.int32))
    if arr.dtype == want:
        return arr
    return jnp.asarray(arr, want) if isinstance(arr, jax.Array) else arr.astype(want)


def check_common(x: Any, shifts: Any, action: str, metric: str = "relative"):
    """``(ndim, x, shifts)`` after checking ``x``, ``shifts``, ``action`` and ``metric``."""
    width = np.shape(shifts)[-1] if np.ndim(shifts) == 2 else None
    if width is not None and np.ndim(x) == width + 1:  # one image, without its batch axis
        raise ValueError(f"x must have shape (N, *spatial, C) with {width} spatial dim(s), as "
                         f"the shifts have {width} columns; got shape {np.shape(x)}: add the "
                         f"batch axis, e.g. x[None]")
    ndim = _checks.spatial_rank("x", x)
    _checks.choice("action", action, ACTIONS)
    _checks.choice("metric", metric, METRICS)
    x = x if isinstance(x, jax.Array) else jnp.asarray(x)
    return ndim, x, check_shifts(shifts, ndim, action, x.dtype)


def check_out_stride(out_stride: Any, ndim: int, x_shape: tuple, action: str) -> tuple:
    strides = _checks.positive_ints("out_stride", out_stride, ndim)
    if action in CIRCULAR:
        sizes = tuple(x_shape[1:-1])
        if any(n % s for n, s in zip(sizes, strides)):
            raise ValueError(f"out_stride {strides} must divide every spatial size of x {sizes} "
                             f"for action={action!r} (a circular shift of the input maps to "
                             f"one of the output only then)")
    return strides


def check_border(border: Any) -> int | None:
    return _checks.int_at_least("border", border, 0, allow_none=True)


def check_batching(batching: Any, memory_budget: Any) -> None:
    _checks.choice("batching", batching, BATCHING)
    _checks.int_at_least("memory_budget", memory_budget, 1, allow_none=True)


def check_chunk(chunk_size: Any) -> int | None:
    return _checks.int_at_least("chunk_size", chunk_size, 1, allow_none=True)
