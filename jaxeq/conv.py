"""One N-D convolution for every padding mode and fill: explicit pad, then a VALID conv.

The pad is explicit rather than ``lax.conv_general_dilated``'s own: that one cannot express
non-zero fills, and its weight gradient is far slower on XLA:CPU (DESIGN.md). A backend's fast
path (:mod:`jaxeq.kernels`) may replace :func:`padded_conv`, with the same results.
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax
import numpy as np

from jaxeq import _checks, kernels
from jaxeq.padding import padding_pairs, pad

_DIMENSION_NUMBERS = {
    1: ("NWC", "WIO", "NWC"),
    2: ("NHWC", "HWIO", "NHWC"),
    3: ("NDHWC", "DHWIO", "NDHWC"),
}


def conv(x: Any, kernel: Any, *, stride: Any = 1, dilation: Any = 1, padding: Any = "same",
         fill: str = "zeros", groups: int = 1, bias: Any = None,
         precision: Any = None) -> jnp.ndarray:
    """Convolve ``x`` (N, *spatial, C_in) with ``kernel`` (*k, C_in // groups, C_out).

    ``padding`` is "valid", "same", "full" or explicit ``(lo, hi)`` pairs (see
    :func:`jaxeq.padding_pairs`); ``fill`` is "zeros", "circular", "reflect" or "replicate".
    Works for 1, 2 and 3 spatial dims (taken from ``kernel.ndim - 2``). Mixed input and
    kernel dtypes are computed in their promoted dtype (float16 with float32: float32).
    """
    kshape = np.shape(kernel)
    if len(kshape) not in (3, 4, 5):
        raise ValueError(f"kernel must have shape (*k, C_in // groups, C_out) with 1, 2 or 3 "
                         f"spatial dims, got shape {kshape}")
    ndim = len(kshape) - 2
    if np.ndim(x) != ndim + 2:
        raise ValueError(f"x must have shape (N, *spatial, C) with as many spatial dims as the "
                         f"kernel (*k, C_in // groups, C_out) of shape {kshape}, i.e. rank "
                         f"{ndim + 2}; got x of shape {np.shape(x)}")
    _checks.int_at_least("groups", groups, 1)
    c_in, c_out = np.shape(x)[-1], kshape[-1]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both input channels ({c_in}) and "
                         f"output channels ({c_out})")
    if kshape[-2] * groups != c_in:
        raise ValueError(f"kernel has {kshape[-2]} input channels per group; with groups={groups} "
                         f"x must have {kshape[-2] * groups} channels, got {c_in}")
    strides = _checks.positive_ints("stride", stride, ndim)
    dils = _checks.positive_ints("dilation", dilation, ndim)
    pairs = padding_pairs(padding, kshape[:ndim], stride=strides, dilation=dils,
                          input_size=np.shape(x)[1:-1], ndim=ndim)
    if bias is not None and np.shape(bias) != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {np.shape(bias)}")

    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    if x.dtype != kernel.dtype:  # lax refuses mixed dtypes: compute in the wider one, as jnp does
        common = jnp.promote_types(x.dtype, kernel.dtype)
        x, kernel = x.astype(common), kernel.astype(common)
    depthwise = groups == c_in == c_out  # one filter per channel (BlurPool's blur)
    impl = (depthwise and kernels.select("depthwise_conv")) or kernels.select("conv") or padded_conv
    y = impl(x, kernel, pairs, fill, strides, dils, precision, groups)
    if bias is not None:
        y = y + jnp.asarray(bias).reshape((1,) * (ndim + 1) + (c_out,))
    return y


def padded_conv(x, kernel, pairs, fill, strides, dils, precision, groups=1, *,
                batch_last=False):
    """The convolution itself (the plain path, checked arguments): pad, then a VALID ``lax``
    conv. ``batch_last``: x is laid out (C, *spatial, N) instead of (N, *spatial, C)."""
    lhs, rhs, out = _DIMENSION_NUMBERS[kernel.ndim - 2]
    if batch_last:
        lhs = "C" + lhs[1:-1] + "N"
    return lax.conv_general_dilated(
        pad(x, pairs, fill), kernel, window_strides=strides, padding="VALID",
        rhs_dilation=dils, dimension_numbers=(lhs, rhs, out), feature_group_count=groups,
        precision=precision)


def output_size(n: int, kernel_size: int, *, stride: int = 1, dilation: int = 1,
                padding: Any = "same") -> int:
    """Length of one spatial dim after a conv or pool with these settings."""
    (lo, hi), = padding_pairs(padding, (kernel_size,), stride=(stride,), dilation=(dilation,))
    span = dilation * (kernel_size - 1) + 1
    return (n + lo + hi - span) // stride + 1
