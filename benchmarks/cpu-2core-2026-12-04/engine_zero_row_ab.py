"""Same-process A/B of the batch-independence check: 16 roll shifts of a ResNet-18 (eval, one
64 px image) that include the zero shift (its row is the check: 16 rows) against the same grid
with the zero shift replaced by (3, 3) (one extra unshifted copy: 17 rows), and the batched
forward of the 16 shifted copies made beforehand (the bench baseline). Alternating, 7 rounds
after two warm-ups (rotating order: jaxeq.bench.harness.time_alternating), medians.

    python benchmarks/cpu-2core-2026-12-04/engine_zero_row_ab.py same|full > engine_zero_row_ab_PADDING.txt
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxeq as jq
from jaxeq.bench import harness
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup

pad = sys.argv[1]
model, variables, _, xn, _ = setup("resnet18", pad, 1, 64, "cpu")
x = jax.device_put(xn)
f = jax.jit(lambda v: model.apply(variables, v, train=False))
with_zero = _shifts(16)
no_zero = with_zero.copy()
no_zero[np.all(no_zero == 0, 1)] = (3, 3)
xs = jax.jit(jax.vmap(lambda s: jq.roll(x, s)[0]))(jnp.asarray(with_zero))
bp = jax.jit(lambda xs, x: jnp.linalg.norm(f(xs) - f(x), axis=1) / jnp.linalg.norm(f(x)))
calls = {"zero_row_is_check(16 rows)": lambda: jq.invariance_error(f, x, with_zero),
         "extra_copy(17 rows)": lambda: jq.invariance_error(f, x, no_zero),
         "batched_forward(16)": lambda: np.asarray(bp(xs, x))}
times = harness.time_alternating(calls, repeats=7, warmup=2)  # warm-up compiles
for name, ts in times.items():
    print(pad, name, f"median {np.median(ts) * 1e3:.1f} ms", [round(t * 1e3) for t in ts])
