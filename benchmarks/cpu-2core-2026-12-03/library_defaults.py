"""What a library user gets: jaxeq's programs compiled with its per-compile CPU options
(jaxeq.xla_options) vs the same programs under XLA's defaults, in one process started WITHOUT
XLA_FLAGS (as a notebook or pytest runs), alternating, medians of 5 calls after one warm-up.

- jq.invariance_error of a ResNet-18 (full, 10 classes, eval) on one 96x96 image, 64 roll shifts
  (the issue's example); the default side is the same call with JAXEQ_NO_XLA_DEFAULTS=1 set
  while its program is built.
- the loss gradient of a ResNet-18 (same, 1000 classes, train mode, batch 32, 112 px), what the
  trainer's step differentiates: xla_options.jit vs jax.jit.

env -u XLA_FLAGS python benchmarks/cpu-2core-2026-12-03/library_defaults.py > benchmarks/cpu-2core-2026-12-03/library_defaults.txt
"""
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxeq as jq
import jaxeq.models
from jaxeq import xla_options

assert "XLA_FLAGS" not in os.environ, "run without XLA_FLAGS: this measures XLA's defaults"


def medians_ms(fns, rounds=5):
    for f in fns.values():
        jax.block_until_ready(f())
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(f())
            times[k].append(time.perf_counter() - t)
    return {k: round(1e3 * float(np.median(v)), 1) for k, v in times.items()}


print("load at start", os.getloadavg())
x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 96, 96, 3)), jnp.float32)
model = jaxeq.models.get("resnet18", padding="full", num_classes=10)
variables = model.init(jax.random.PRNGKey(0), x, train=False)
shifts = jq.shift_grid(4)[:64]
f_ours = jax.jit(lambda v: model.apply(variables, v, train=False))
f_default = jax.jit(lambda v: model.apply(variables, v, train=False))
ours = jq.invariance_error(f_ours, x, shifts, action="roll")  # program built with the options
os.environ["JAXEQ_NO_XLA_DEFAULTS"] = "1"
default = jq.invariance_error(f_default, x, shifts, action="roll")  # built without
del os.environ["JAXEQ_NO_XLA_DEFAULTS"]
print("invariance_error max rel diff between the two:",
      float(np.max(np.abs(ours - default)) / np.max(np.abs(default))))
print("jq.invariance_error resnet18 full 96px, 64 roll shifts (ms):", medians_ms({
    "jaxeq options": lambda: jq.invariance_error(f_ours, x, shifts, action="roll"),
    "XLA defaults": lambda: jq.invariance_error(f_default, x, shifts, action="roll")}))

xb = jnp.asarray(np.random.default_rng(1).standard_normal((32, 112, 112, 3)), jnp.float32)
y = jnp.asarray(np.random.default_rng(2).integers(0, 1000, 32))
net = jaxeq.models.get("resnet18", padding="same")
v0 = net.init(jax.random.PRNGKey(0), xb[:1], train=False)


def loss(params, xb):
    logits, _ = net.apply({**v0, "params": params}, xb, train=True, mutable=["batch_stats"])
    return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(32), y])


grad_ours, grad_default = xla_options.jit(jax.grad(loss)), jax.jit(jax.grad(loss))
print("resnet18 same 112px b32 train-mode loss gradient (ms):", medians_ms({
    "jaxeq options": lambda: grad_ours(v0["params"], xb),
    "XLA defaults": lambda: grad_default(v0["params"], xb)}))
print("load at end", os.getloadavg())
