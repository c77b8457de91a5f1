"""Host-side cost of the layer table: one warm `jq.layerwise_equivariance` call against one
uncached abstract trace of the model (before b47a33a each call made three: the shapes, the
execution order and the memory bound). ResNet-18 same, one 96 px image, 64 roll shifts.

    python benchmarks/cpu-2core-2026-12-04/layerwise_host_cost.py > layerwise_host_cost.txt
"""
import time

import jax
import numpy as np

import jaxeq as jq
from jaxeq.analysis import layerwise
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup


def median_s(fn, n=5):
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


model, variables, _, xn, _ = setup("resnet18", "same", 1, 96, "cpu")
x, js = jax.device_put(xn), jax.device_put(_shifts(64))
features = layerwise._FlaxFeatures(model, (("train", False),))
print(f"warm layerwise_equivariance call: {median_s(lambda: jq.layerwise_equivariance(model, variables, x, js, action='roll')):.3f} s")
# a fresh function each time: JAX caches traces per function object
print(f"one abstract trace of the model:  "
      f"{median_s(lambda: jax.make_jaxpr(lambda v, u: features(v, u))(variables, x)):.3f} s")
