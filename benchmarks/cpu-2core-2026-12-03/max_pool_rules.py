"""The max-pool fast path's derivative written as a JVP (what jaxeq.kernels.slice_max ships: JAX
transposes it into the gradient) vs the same rule written as a custom VJP, alternating in one
process: a 3x3 stride-2 max-pool of a ReLU map (32x113x113x64, ties at the zeros) forward +
gradient, a whole ResNet-18 train-mode loss gradient, and forward mode (jax.jvp; only the JVP
form has one, so that row times the JVP form alone).

python benchmarks/cpu-2core-2026-12-03/max_pool_rules.py > benchmarks/cpu-2core-2026-12-03/max_pool_rules.txt
(XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=; medians of 7 calls, alternating.)
"""
import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxeq.models
from jaxeq import kernels
from jaxeq.kernels import slice_max


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def vjp_form(xp, win, strides):
    return slice_max.max_pool(xp, win, strides)


def _fwd(xp, win, strides):
    out = slice_max.max_pool(xp, win, strides)
    return out, (xp, out)


def _bwd(win, strides, res, g):
    xp, out = res
    taken = jnp.zeros(out.shape, bool)
    dxp = jnp.zeros(xp.shape, g.dtype)
    zero = jnp.zeros((), g.dtype)
    for offs, v in zip(np.ndindex(*win), slice_max.window_slices(xp, win, strides)):
        hit = (v == out) & ~taken
        taken = taken | hit
        config = [(0, 0, 0)]
        for o, n, m, s in zip(offs, xp.shape[1:-1], out.shape[1:-1], strides):
            config.append((o, n - o - (m - 1) * s - 1, s - 1))
        config.append((0, 0, 0))
        dxp = dxp + lax.pad(jnp.where(hit, g, zero), zero, config)
    return (dxp,)


vjp_form.defvjp(_fwd, _bwd)


def median_ms(fns, args, rounds=7):
    for f in fns.values():
        jax.block_until_ready(f(*args))
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[k].append(time.perf_counter() - t)
    return {k: round(1e3 * float(np.median(v)), 2) for k, v in times.items()}


print("XLA_FLAGS", os.environ.get("XLA_FLAGS"), "load", os.getloadavg())
rng = np.random.default_rng(0)
xp = jnp.asarray(np.maximum(rng.standard_normal((32, 113, 113, 64)), 0), jnp.float32)
win, st = (3, 3), (2, 2)
grads = {name: jax.jit(jax.grad(lambda v, pool=pool: jnp.sum(pool(v, win, st) ** 2)))
         for name, pool in (("jvp form", slice_max.max_pool), ("vjp form", vjp_form))}
a, b = (np.asarray(g(xp)) for g in grads.values())
print("stem max-pool gradients identical:", bool(np.array_equal(a, b)))
print("stem max-pool 32x113x113x64 forward+gradient (ms):", median_ms(grads, (xp,)))
t = jnp.asarray(rng.standard_normal(xp.shape), jnp.float32)
jvp = jax.jit(lambda v, t: jax.jvp(lambda u: slice_max.max_pool(u, win, st), (v,), (t,)))
plain = jax.jit(lambda v, t: jax.jvp(lambda u: lax.reduce_window(
    u, -jnp.inf, lax.max, (1, *win, 1), (1, *st, 1), "VALID"), (v,), (t,)))
print("stem max-pool forward mode (ms):", median_ms({"jvp form": jvp, "reduce_window": plain},
                                                    (xp, t)))

x = jnp.asarray(rng.standard_normal((32, 112, 112, 3)), jnp.float32)
y = jnp.asarray(rng.integers(0, 1000, 32))
model = jaxeq.models.get("resnet18", padding="same")
variables = model.init(jax.random.PRNGKey(0), x[:1], train=False)
real_select = kernels.select


def loss_grad(use_vjp_form):
    def loss(params, x):
        if use_vjp_form:
            kernels.select = lambda op, backend=None: (
                vjp_form if op == "max_pool" else real_select(op, backend))
        try:
            logits, _ = model.apply({**variables, "params": params}, x, train=True,
                                    mutable=["batch_stats"])
        finally:
            kernels.select = real_select
        return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(32), y])
    return jax.jit(jax.grad(loss))


steps = {"jvp form": loss_grad(False), "vjp form": loss_grad(True)}
print("resnet18 same 112px b32 train-mode loss gradient (ms):",
      median_ms(steps, (variables["params"], x)))
