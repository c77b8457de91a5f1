"""On a CPU the analysis' full-float32 precision changes nothing: the engine's errors with and
without ``jax.default_matmul_precision("highest")`` around its program, and their times
(ResNet-18 full, one 64 px image, 16 translations; A and B alternating).

    python benchmarks/cpu-2core-2026-12-04/measure_precision_ab.py > measure_precision_ab.txt
"""
import time

import jax
import numpy as np

import jaxeq as jq
from jaxeq.analysis import engine, precision
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup

model, variables, _, xn, _ = setup("resnet18", "full", 1, 64, "cpu")
x, js = jax.device_put(xn), jax.device_put(_shifts(16))
errors, times = {}, {"highest": [], None: []}
for mode in ["highest", None] * 2:
    precision.MEASURE_PRECISION = mode
    engine._single_output_program.cache_clear()
    f = jax.jit(lambda v: model.apply(variables, v, train=False))
    errors[mode] = jq.invariance_error(f, x, js, action="translate")
    for _ in range(5):
        t0 = time.perf_counter()
        jq.invariance_error(f, x, js, action="translate")
        times[mode].append(time.perf_counter() - t0)
for mode, ts in times.items():
    print(f"precision {mode!s:8} median {np.median(ts) * 1e3:.0f} ms over {len(ts)} calls")
print("errors bit-identical:", np.array_equal(errors["highest"], errors[None]))
