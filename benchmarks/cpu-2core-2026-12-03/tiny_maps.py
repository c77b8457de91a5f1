"""Zero padding on tiny maps: jq.conv (the CPU path keeps the zero pad out of the conv window on
maps <= 2 px) vs the plain padded conv that XLA:CPU folds into a padded window, and ResNet-18
eval forwards (batch 4, 64 px: layer4 runs on 2x2 maps), same-zeros vs same-circular.

python benchmarks/cpu-2core-2026-12-03/tiny_maps.py > benchmarks/cpu-2core-2026-12-03/tiny_maps.txt
(XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=; medians of 7 calls, alternating.)
"""
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxeq as jq
import jaxeq.models
from jaxeq.conv import padded_conv


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
pairs = ((1, 1), (1, 1))
for n, h, c in ((4, 2, 512), (32, 2, 512), (4, 4, 512), (32, 7, 512)):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((n, h, h, c)), jnp.float32)
    w = jnp.full((3, 3, c, c), 0.01, jnp.float32)
    fns = {"jq.conv zeros": jax.jit(lambda x, w: jq.conv(x, w, padding="same")),
           "plain zeros (pad folded)": jax.jit(
               lambda x, w: padded_conv(x, w, pairs, "zeros", (1, 1), (1, 1), None)),
           "jq.conv circular": jax.jit(lambda x, w: jq.conv(x, w, padding="same", fill="circular"))}
    print(f"conv 3x3 same, x {n}x{h}x{h}x{c} (ms):", median_ms(fns, (x, w)))
x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 64, 64, 3)), jnp.float32)
fwd = {}
for fill in ("zeros", "circular"):
    m = jaxeq.models.get("resnet18", padding="same", fill=fill, num_classes=10)
    v = m.init(jax.random.PRNGKey(0), x[:1], train=False)
    fwd[f"resnet18 same-{fill}"] = jax.jit(lambda x, m=m, v=v: m.apply(v, x, train=False))
print("resnet18 eval forward, 4x64x64x3 (ms):", median_ms(fwd, (x,)))
