"""One N-D convolution for every padding mode and fill: explicit pad, then a VALID conv.

Padding inside ``lax.conv_general_dilated`` has a weight gradient ~30x slower on XLA:CPU than
``jnp.pad`` followed by a VALID conv (DESIGN.md), and it cannot express non-zero fills anyway.

On the CPU backend the weight gradient also gets its input in the layout XLA:CPU's kernels want
(see :func:`_conv_cpu`): XLA would otherwise re-lay out every activation inside a fusion that
recomputes the layer before it, at ~1/20 of memory speed.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from jaxeq import _checks
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
    Works for 1, 2 and 3 spatial dims (taken from ``kernel.ndim - 2``).
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
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
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
    block = (_batch_block(x.shape[0], jax.device_count())
             if groups == 1 and jax.default_backend() == "cpu" else 0)
    if block:
        y = _conv_cpu(x, kernel, pairs, fill, strides, dils, precision, block)
    else:
        y = _padded_conv(x, kernel, pairs, fill, strides, dils, precision, groups)
    if bias is not None:
        y = y + jnp.asarray(bias).reshape((1,) * (ndim + 1) + (c_out,))
    return y


def _padded_conv(x, kernel, pairs, fill, strides, dils, precision, groups=1, *,
                 batch_last=False):
    """The convolution itself: pad, then a VALID ``lax`` conv. ``batch_last``: x is laid out
    (C, *spatial, N) instead of (N, *spatial, C)."""
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


# ----------------------------------------------------------------------------------------------
# CPU: the weight gradient reads x as (C, *spatial, N).
#
# XLA:CPU computes a weight gradient as a convolution whose "batch" is C_in and whose contracted
# "feature" is N, so it needs x physically as (C, *spatial, N). Left to itself it makes that
# copy inside a loop fusion that also recomputes x's producer (BatchNorm, ReLU, residual add),
# reading with a large stride: in a ResNet-18 train step these fusions took 23 ms each for a
# 6 MB activation, ~220 ms per step in all. Here the forward pass transposes x itself with a
# GEMM against an identity matrix (exact: one product by 1 per output, the rest exact zeros;
# XLA never fuses a producer into a GEMM) and the weight tangent is a convolution that takes
# x in that layout, so reverse mode hands XLA:CPU its operand as is. Results are bitwise those
# of the plain convolution (tested), subnormal inputs included; an inf in x turns the weight
# gradient entries it already makes non-finite into NaN instead of inf (0 * inf in the GEMM).
# A custom JVP, not a custom VJP, so forward mode, vmap and higher derivatives keep working.

_MAX_BATCH_BLOCK = 64  # the GEMM costs 2 * block flops per element: keep it small vs the conv


def _batch_block(n: int, shards: int = 1) -> int:
    """Rows per identity GEMM: the largest divisor of the per-shard batch (``n / shards`` when
    that divides; a data-parallel jit splits the batch over all devices, and a block must not
    straddle two of them) up to ``_MAX_BATCH_BLOCK``; 0 when that is below 8 (then the plain
    path is as good)."""
    per_shard = n // shards if n % shards == 0 else n
    b = next(d for d in range(min(per_shard, _MAX_BATCH_BLOCK), 0, -1) if per_shard % d == 0)
    return b if b >= 8 else 0


def _batch_to_last(x: jnp.ndarray, b: int) -> jnp.ndarray:
    """(N, *S, C) -> (C, *S, N), exactly, via identity GEMMs over blocks of ``b`` samples."""
    n, c, sp = x.shape[0], x.shape[-1], x.shape[1:-1]
    eye = jnp.eye(b, dtype=x.dtype)
    # (N/b, b, P) x (b, b) -> (N/b, P, b): each block transposed by the GEMM's packing.
    t = lax.dot_general(x.reshape(n // b, b, -1), eye, (((1,), (0,)), ((), ())),
                        precision=lax.Precision.HIGHEST)
    nd = len(sp)
    t = t.reshape((n // b,) + sp + (c, b))
    # (N/b, *S, C, b) -> (C, *S, N/b, b): moves whole rows of b values.
    t = jnp.transpose(t, (nd + 1,) + tuple(range(1, nd + 1)) + (0, nd + 2))
    return t.reshape((c,) + sp + (n,))


@partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5, 6, 7))
def _conv_cpu(x, kernel, pairs, fill, strides, dils, precision, block):
    return _padded_conv(x, kernel, pairs, fill, strides, dils, precision)


def _conv_cpu_jvp(pairs, fill, strides, dils, precision, block, primals, tangents):
    x, kernel = primals
    dx, dkernel = tangents
    args = (pairs, fill, strides, dils, precision, block)
    y = _conv_cpu(x, kernel, *args)
    terms = []
    if not isinstance(dx, jax.custom_derivatives.SymbolicZero):
        terms.append(_conv_cpu(dx, kernel, *args))
    if not isinstance(dkernel, jax.custom_derivatives.SymbolicZero):
        # Transpose, then pad: the pad fuses into the copy after the GEMM (or, for zeros, into
        # the convolution). But when the output is larger than the input (F-Conv at stride 1)
        # XLA:CPU's weight-gradient kernel cannot take a folded zero pad (a 2 s fallback for a
        # 3 ms conv, measured), so there the padded x goes through the GEMM.
        if any(o > i for o, i in zip(y.shape[1:-1], x.shape[1:-1])):
            xt, xt_pairs = _batch_to_last(pad(x, pairs, fill), block), ((0, 0),) * len(pairs)
        else:
            xt, xt_pairs = _batch_to_last(x, block), pairs
        terms.append(_padded_conv(xt, dkernel, xt_pairs, fill, strides, dils, precision,
                                  batch_last=True))
    dy = sum(terms[1:], terms[0]) if terms else jnp.zeros_like(y)
    return y, dy


_conv_cpu.defjvp(_conv_cpu_jvp, symbolic_zeros=True)
