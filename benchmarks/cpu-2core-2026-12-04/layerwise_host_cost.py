"""Host-side cost of the layer table: one warm `jq.layerwise_equivariance` call against one
uncached abstract trace of the model (before b47a33a each call made three: the shapes, the
execution order and the memory bound). ResNet-18 same, one 96 px image, 64 roll shifts.

    python benchmarks/cpu-2core-2026-12-04/layerwise_host_cost.py > layerwise_host_cost.txt
"""
import jax

import jaxeq as jq
from jaxeq.analysis import layerwise
from jaxeq.bench import harness
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup


model, variables, _, xn, _ = setup("resnet18", "same", 1, 96, "cpu")
x, js = jax.device_put(xn), jax.device_put(_shifts(64))
features = layerwise._FlaxFeatures(model, (("train", False),))
print(f"warm layerwise_equivariance call: {harness.median_s(lambda: jq.layerwise_equivariance(model, variables, x, js, action='roll')):.3f} s")
# a fresh function each time: JAX caches traces per function object
print(f"one abstract trace of the model:  "
      f"{harness.median_s(lambda: jax.make_jaxpr(lambda v, u: features(v, u))(variables, x)):.3f} s")
