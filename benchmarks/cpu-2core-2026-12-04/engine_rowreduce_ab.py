"""Same-process A/B of the engine's per-shift statistics: five reductions over every whole
output (A, the engine's form before this change) against reductions over the channels first
(B: per-pixel sum of squares and max of |diff|, and of the reference's squares, each a short
reduction along the contiguous channel axis; the regional sums and maxima then run over the
C-times smaller per-pixel maps). ResNet-18 at 96 px, one image, 64 roll shifts, eval mode,
`jq.layerwise_equivariance` (51 outputs per shift); A and B alternate, 5 rounds each after a
warm-up, medians; the tables must agree to float32 rounding.

    python benchmarks/cpu-2core-2026-12-04/engine_rowreduce_ab.py PADDING > engine_rowreduce_ab_PADDING.txt
"""
import sys

import jax.numpy as jnp
import layer_table_ab  # this folder's shared A/B runner

from jaxeq.analysis import engine
from jaxeq.analysis.actions import expected as _expected


def compare_five(y, ref, s, spec, action, border, want_map):
    """Five reductions over the whole output per shift (the previous form)."""
    dtype = ref.dtype
    if spec == "invariant":
        expected, valid, in_group = ref, jnp.ones((), dtype), jnp.bool_(True)
        interior = jnp.ones((), dtype)
    else:
        expected, valid, in_group = _expected(ref, s, spec, action)
        interior = jnp.asarray(engine._interior_mask(ref.shape[1:-1], border), dtype)
    diff = (y - expected) * valid
    refm = expected * valid
    absd = jnp.abs(diff)
    inner = jnp.broadcast_to(interior, diff.shape)
    max_int, max_bor = jnp.max(absd * inner), jnp.max(absd * (1 - inner))
    if spec == "invariant":
        n_int = n_all = jnp.asarray(diff.size, jnp.float32)
    else:
        spatial = (1,) + ref.shape[1:-1] + (1,)
        per_pixel = ref.shape[0] * ref.shape[-1]
        valid_map = jnp.broadcast_to(valid, spatial).astype(jnp.float32)
        n_int = jnp.sum(valid_map * jnp.broadcast_to(interior, spatial)) * per_pixel
        n_all = jnp.sum(valid_map) * per_pixel
    stats = {
        "d2_int": jnp.sum(jnp.square(diff) * inner), "d2_all": jnp.sum(jnp.square(diff)),
        "r2_all": jnp.sum(jnp.square(refm)),
        "max_int": max_int, "max_bor": max_bor, "max_all": jnp.maximum(max_int, max_bor),
        "n_int": n_int, "n_all": n_all,
    }
    nan = jnp.asarray(jnp.nan, jnp.result_type(dtype, jnp.float32))
    return {k: jnp.where(in_group, v.astype(nan.dtype), nan) for k, v in stats.items()}, in_group


if __name__ == "__main__":
    layer_table_ab.run(sys.argv[1], {"A_five_whole": compare_five,
                                     "B_channels_first": engine._compare})
