"""Depthwise convolution (one filter per channel) as a weighted sum of strided slices.

Same values as ``lax.conv_general_dilated`` with ``feature_group_count = C``
(:func:`jaxeq.conv.padded_conv`) up to the order of the additions: output = sum over the kernel
offsets o of ``w[o, c] * x_padded[:, o * dilation :: stride, c]``. XLA:CPU runs a grouped
convolution with one channel per group as a slow generic loop, forward and backward; slices,
products and sums fuse into a few vectorised loops and differentiate into pads and sums
(BENCHMARKS.md, "Depthwise convolution"). BlurPool is such a convolution with a fixed binomial
filter. Products are summed in float32 (or wider), as the convolution accumulates.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxeq.padding import pad

# One slice per kernel offset: past this many (a 7x7 kernel has 49) the program grows large,
# and the speed-up is measured only for 3x3 blurs (BENCHMARKS.md), so larger kernels keep the
# convolution.
MAX_OFFSETS = 49


def depthwise_conv(x, kernel, pairs, fill, strides, dils, precision, groups):
    """The depthwise case of :func:`jaxeq.conv.padded_conv` (``groups`` = C_in = C_out, kernel
    (*k, 1, C)); any other case, a kernel with more than :data:`MAX_OFFSETS` offsets or an
    empty output goes to the CPU convolution path."""
    from jaxeq.kernels.conv_relayout import conv as cpu_conv

    ksize = kernel.shape[:-2]
    channels = x.shape[-1]
    xp = pad(x, pairs, fill)
    out_size = [(n - d * (k - 1) - 1) // s + 1
                for n, k, s, d in zip(xp.shape[1:-1], ksize, strides, dils)]
    if not (groups == channels == kernel.shape[-1] and kernel.shape[-2] == 1) \
            or int(np.prod(ksize)) > MAX_OFFSETS or min(out_size) < 1:
        return cpu_conv(x, kernel, pairs, fill, strides, dils, precision, groups)
    acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
    # per offset, the channels' weights shaped to broadcast over (N, *spatial)
    w = kernel.reshape(ksize + (1,) * (len(ksize) + 1) + (channels,)).astype(acc_dtype)
    out = None
    for offs in np.ndindex(*ksize):
        start = (0,) + tuple(o * d for o, d in zip(offs, dils)) + (0,)
        limit = (xp.shape[0],) + tuple(o * d + (m - 1) * s + 1 for o, d, m, s
                                       in zip(offs, dils, out_size, strides)) + (channels,)
        term = lax.slice(xp, start, limit, (1,) + tuple(strides) + (1,)).astype(acc_dtype) * w[offs]
        out = term if out is None else out + term
    return out.astype(x.dtype)
