"""XLA:CPU convolution whose weight gradient reads its input as (C, *spatial, N).

XLA:CPU computes a weight gradient as a convolution whose "batch" is C_in and whose contracted
"feature" is N, so it needs x physically as (C, *spatial, N). Left to itself it makes that copy
in one permutation that also recomputes x's producer (BatchNorm, ReLU, residual add); walking
its output, a cache line of x serves one element and is needed again only a whole
(*spatial, N) sweep later, long after it left the cache (BENCHMARKS.md, "The weight-gradient
relayout"). Here the forward pass moves N last in two passes whose reads reuse each line: a GEMM
against an identity matrix per block of samples (exact: one product by 1 per output, the rest
exact zeros), for which XLA first copies each block of b samples to (*spatial * C, b), b read
streams that each advance one element per output row; then moves of whole b-float rows to
(C, *spatial, N). XLA fuses x's producer into that first copy all the same (BENCHMARKS.md,
"What XLA:CPU makes of the identity GEMM"). The weight tangent is a convolution that takes x in
the new layout, so reverse mode hands XLA:CPU its operand as is.

Results are bitwise those of :func:`jaxeq.conv.padded_conv` (tested), subnormal inputs
included, except for zero padding on tiny maps (to rounding, see :func:`conv`); an inf in x turns the weight-gradient entries it already makes non-finite into NaN
instead of inf (0 * inf in the GEMM). A custom JVP, not a custom VJP, so forward mode, vmap and
higher derivatives keep working.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from jaxeq.conv import padded_conv
from jaxeq.padding import pad

MAX_BATCH_BLOCK = 64  # the GEMM costs 2 * block flops per element: keep it small vs the conv


# Spatial size up to which a zero pad is kept out of the convolution window (see conv).
TINY_MAP = 2


def conv(x, kernel, pairs, fill, strides, dils, precision, groups=1):
    """:func:`jaxeq.conv.padded_conv` with the relaid-out weight gradient, where it applies
    (ungrouped, and a batch block of at least 8 samples); the plain convolution otherwise.

    On maps of at most ``TINY_MAP`` pixels per side a zero pad is materialised behind an
    optimisation barrier: XLA:CPU folds a zero pad into the convolution's window, and its
    padded-window kernel is far slower than a VALID conv on such maps (ResNet layer4 on a
    small input; measured in BENCHMARKS.md, "Zero padding on tiny maps"). Same values to float
    rounding (the two kernels sum in different orders)."""
    if fill == "zeros" and max(x.shape[1:-1]) <= TINY_MAP and any(map(any, pairs)):
        x = lax.optimization_barrier(pad(x, pairs, "zeros"))
        pairs = tuple((0, 0) for _ in pairs)
    block = batch_block(x.shape[0], jax.device_count()) if groups == 1 else 0
    if not block:
        return padded_conv(x, kernel, pairs, fill, strides, dils, precision, groups)
    return _conv(x, kernel, pairs, fill, strides, dils, precision, block)


def batch_block(n: int, shards: int = 1) -> int:
    """Rows per identity GEMM: the largest divisor of the per-shard batch (``n / shards`` when
    that divides; a data-parallel jit splits the batch over all devices, and a block must not
    straddle two of them) up to ``MAX_BATCH_BLOCK``; 0 when that is below 8 (then the plain
    path is as good)."""
    per_shard = n // shards if n % shards == 0 else n
    b = next(d for d in range(min(per_shard, MAX_BATCH_BLOCK), 0, -1) if per_shard % d == 0)
    return b if b >= 8 else 0


def batch_to_last(x: jnp.ndarray, b: int) -> jnp.ndarray:
    """(N, *S, C) -> (C, *S, N), exactly, via identity GEMMs over blocks of ``b`` samples."""
    n, c, sp = x.shape[0], x.shape[-1], x.shape[1:-1]
    eye = jnp.eye(b, dtype=x.dtype)
    # (N/b, b, P) x (b, b) -> (N/b, P, b): XLA transposes each block as it copies the GEMM's
    # operand (its dot wants the contracted axis minor).
    t = lax.dot_general(x.reshape(n // b, b, -1), eye, (((1,), (0,)), ((), ())),
                        precision=lax.Precision.HIGHEST)
    nd = len(sp)
    t = t.reshape((n // b,) + sp + (c, b))
    # (N/b, *S, C, b) -> (C, *S, N/b, b): moves whole rows of b values.
    t = jnp.transpose(t, (nd + 1,) + tuple(range(1, nd + 1)) + (0, nd + 2))
    return t.reshape((c,) + sp + (n,))


@partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5, 6, 7))
def _conv(x, kernel, pairs, fill, strides, dils, precision, block):
    return padded_conv(x, kernel, pairs, fill, strides, dils, precision)


def _conv_jvp(pairs, fill, strides, dils, precision, block, primals, tangents):
    x, kernel = primals
    dx, dkernel = tangents
    args = (pairs, fill, strides, dils, precision, block)
    y = _conv(x, kernel, *args)
    terms = []
    if not isinstance(dx, jax.custom_derivatives.SymbolicZero):
        terms.append(_conv(dx, kernel, *args))
    if not isinstance(dkernel, jax.custom_derivatives.SymbolicZero):
        # Transpose, then pad: the pad fuses into the copy after the GEMM (or, for zeros, into
        # the convolution). But when the output is larger than the input (F-Conv at stride 1)
        # XLA:CPU's weight-gradient kernel cannot take a folded zero pad (it falls back to a
        # far slower kernel), so there the padded x goes through the GEMM.
        if any(o > i for o, i in zip(y.shape[1:-1], x.shape[1:-1])):
            xt, xt_pairs = batch_to_last(pad(x, pairs, fill), block), ((0, 0),) * len(pairs)
        else:
            xt, xt_pairs = batch_to_last(x, block), pairs
        terms.append(padded_conv(xt, dkernel, xt_pairs, fill, strides, dils, precision,
                                 batch_last=True))
    dy = sum(terms[1:], terms[0]) if terms else jnp.zeros_like(y)
    return y, dy


_conv.defjvp(_conv_jvp, symbolic_zeros=True)
