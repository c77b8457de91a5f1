"""Same-process A/B of the engine's per-shift statistics: eight reductions over every output
(A: the counts and the overall max reduced over the whole tensor) against five (B: the counts
from the spatial masks, the overall max from the two regional ones). ResNet-18 at 96 px, one
image, 64 roll shifts, eval mode, `jq.layerwise_equivariance` (the table reduces 51 outputs per
shift); A and B alternate, 5 rounds each after a warm-up, medians; the tables must be equal.

    python benchmarks/cpu-2core-2026-12-04/engine_stats_ab.py PADDING > engine_stats_ab_PADDING.txt
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxeq as jq
from jaxeq.analysis import engine
from jaxeq.analysis.actions import expected as _expected
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup


def compare_eight(y, ref, s, spec, action, border, want_map):
    """The statistics as eight full reductions (the previous form)."""
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
    stats = {
        "d2_int": jnp.sum(jnp.square(diff) * inner), "d2_all": jnp.sum(jnp.square(diff)),
        "r2_all": jnp.sum(jnp.square(refm)),
        "max_int": jnp.max(absd * inner), "max_bor": jnp.max(absd * (1 - inner)),
        "max_all": jnp.max(absd),
        "n_int": jnp.sum(jnp.broadcast_to(valid, diff.shape) * inner),
        "n_all": jnp.sum(jnp.broadcast_to(valid, diff.shape)),
    }
    nan = jnp.asarray(jnp.nan, jnp.result_type(dtype, jnp.float32))
    return {k: jnp.where(in_group, v.astype(nan.dtype), nan) for k, v in stats.items()}, in_group


def main(padding):
    model, variables, _, xn, _ = setup("resnet18", padding, 1, 96, "cpu")
    x, js = jax.device_put(xn), jax.device_put(_shifts(64))
    five = engine._compare
    variants = {"A_eight": compare_eight, "B_five": five}
    times = {k: [] for k in variants}
    tables = {}

    def call(name):
        engine._compare = variants[name]
        engine._features_program.cache_clear()
        t0 = time.perf_counter()
        rows = jq.layerwise_equivariance(model, variables, x, js, action="roll")
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = jq.layerwise_equivariance(model, variables, x, js, action="roll")
        return rows, first, time.perf_counter() - t0

    for name in variants:                       # warm-up (and the tables to compare)
        tables[name], _, _ = call(name)
    for _ in range(5):
        for name in variants:
            _, _, warm = call(name)
            times[name].append(warm)
    engine._compare = five
    a, b = tables["A_eight"], tables["B_five"]
    keys = [k for k in a[0] if isinstance(a[0][k], float)]
    same = all(np.array_equal(np.asarray(ra[k]), np.asarray(rb[k]), equal_nan=True)
               for ra, rb in zip(a, b) for k in keys)
    print(f"resnet18 {padding} 96 px, S64 roll, layerwise_equivariance, {len(a)} rows; "
          f"tables equal: {same} (fields {keys})")
    for name, ts in times.items():
        print(f"{name}: median {np.median(ts) * 1e3:.0f} ms  rounds {[round(t * 1e3) for t in ts]}")
    print(f"B / A time: {np.median(times['B_five']) / np.median(times['A_eight']):.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "same")
