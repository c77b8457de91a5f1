"""Translation equivariance in dB, as StyleGAN3 reports it (Karras et al. 2021, "Alias-Free
Generative Adversarial Networks", appendix E): EQ-T for integer shifts, EQ-T_frac for sub-pixel
ones.

The definition (paper appendix E.1 and E.2; NVlabs/stylegan3 ``metrics/equivariance.py``):

    EQ-T = 10 log10( I_max^2 / MSE ),
    MSE  = sum over shifts, examples, compared pixels and channels of (f(T x) - T f(x))^2
           / number of compared elements,

with ``I_max = 2`` the peak-to-peak range of images in ``[-1, 1]`` (here ``max_value``), the
squared errors pooled over all samples before the ratio (one MSE, not a mean of per-sample
PSNRs), and only the pixels where ``T f(x)`` is defined compared (StyleGAN3's mask). Its
shifts are drawn per sample, uniform in ``[-0.125, 0.125]`` of the image size per axis,
rounded to whole pixels for EQ-T and kept real for EQ-T_frac (:func:`eq_t_shifts`). StyleGAN3
translates with zero fill (and a Lanczos-3 kernel for the fractional case, masking 3 more
pixels); here the action is jaxeq's: ``"translate"`` (zero fill, vacated pixels masked),
``"roll"`` or ``"fractional"`` (circular, every pixel compared). An exactly equivariant map
gives ``+inf``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq import _checks
from jaxeq.analysis.actions import (check_batching, check_chunk, check_common,
                                    check_out_stride, off_subgroup)
from jaxeq.analysis.engine import _run

__all__ = ["eq_t_db", "eq_t_shifts"]


def eq_t_shifts(key: Any, count: int, size: Any, *, ndim: int = 2, fractional: bool = False,
                max_fraction: float = 0.125) -> jnp.ndarray:
    """``count`` random shifts as StyleGAN3 draws them: uniform in ``[-max_fraction,
    max_fraction] * size`` per spatial axis (``size``: one int per axis, or an int for all
    ``ndim`` axes), rounded to int32 pixels unless ``fractional`` (then float32). Returns
    ``(count, ndim)``; the same key gives the same draw, rounded or not."""
    count = _checks.int_at_least("count", count, 1)
    ndim = _checks.int_at_least("ndim", ndim, 1)
    sizes = _checks.positive_ints("size", size, ndim if isinstance(size, (int, np.integer))
                                  else len(size))
    if not isinstance(max_fraction, (int, float)) or not 0 < max_fraction <= 0.5:
        raise ValueError(f"max_fraction must be a number in (0, 0.5], got {max_fraction!r}")
    u = jax.random.uniform(key, (count, len(sizes)), jnp.float32, -1.0, 1.0)
    t = u * max_fraction * jnp.asarray(sizes, jnp.float32)[None, :]
    return t if fractional else jnp.round(t).astype(jnp.int32)


def eq_t_db(f: Callable, x: Any, shifts: Any, *, action: str = "fractional",
            max_value: float = 2.0, out_stride: Any = 1, chunk_size: int | None = None,
            batching: str = "auto", memory_budget: int | None = None) -> float:
    """EQ-T (integer shifts) or EQ-T_frac (real shifts, ``action="fractional"``) of ``f`` in dB:
    ``10 * log10(max_value**2 / MSE)`` with the MSE pooled over every shift, example,
    compared pixel and channel (module docstring). ``max_value`` is the peak-to-peak range of
    the output (2 for images in [-1, 1], as StyleGAN3). ``+inf`` when ``f`` is exactly
    equivariant. Shifts that are not multiples of ``out_stride`` (integer actions) are refused.
    """
    if isinstance(max_value, bool) or not isinstance(max_value, (int, float)) or max_value <= 0:
        raise ValueError(f"max_value must be a positive number, got {max_value!r}")
    ndim, x, shifts = check_common(x, shifts, action)
    strides = check_out_stride(out_stride, ndim, x.shape, action)
    chunk_size = check_chunk(chunk_size)
    check_batching(batching, memory_budget)
    off = off_subgroup(shifts, strides, action)
    if len(off):
        raise ValueError(f"shifts {off[:4].tolist()} are not multiples of out_stride={strides}; "
                         f"EQ-T is defined on that subgroup only")
    st = _run(("single", f), x, shifts, {"y": strides}, action, None, chunk_size, False,
              batching, memory_budget).of("y")
    count = float(np.sum(st["n_all"]))
    if count == 0:
        raise ValueError("no output pixel is compared: the shifts move everything off the canvas")
    mse = float(np.sum(st["d2_all"], dtype=np.float64)) / count
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(float(max_value) ** 2 / mse))
