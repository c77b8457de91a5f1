"""BatchNorm's backward sums, row blocks vs the CPU fast path (GEMVs from 256 channels): one
train step of each compiled in one process, timed alternately (the machine drifts; ratios hold).

    python benchmarks/cpu-2core-2026-12-04/bn_backward_ab.py resnet50 full 32 [rounds]
"""
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxeq.kernels as K  # noqa: E402
from jaxeq.bench import model_steps as ms  # noqa: E402

name, padding, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 4
model, variables, _, x, y = ms.setup(name, padding, batch, 112, "cpu")
tx = optax.sgd(0.01, momentum=0.9)
state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
x, y = jnp.asarray(x), jnp.asarray(y)
steps = {}
for variant, fn in (("blocks", "batch_norm_train"), ("gemv", "batch_norm_train_cpu")):
    K._FAST_PATHS[("batch_norm", "cpu")] = "jaxeq.kernels.batch_norm:" + fn
    steps[variant] = jax.jit(ms.make_train_step(model, tx)).lower(state, x, y).compile()
    jax.block_until_ready(steps[variant](state, x, y))
times = {v: [] for v in steps}
for _ in range(rounds):
    for v, f in steps.items():
        t0 = time.perf_counter()
        jax.block_until_ready(f(state, x, y))
        times[v].append(time.perf_counter() - t0)
med = {v: float(np.median(t)) for v, t in times.items()}
print(f"{name} {padding} b{batch}: blocks {med['blocks']:.3f} s, gemv {med['gemv']:.3f} s "
      f"(x{med['blocks'] / med['gemv']:.2f}); rounds {rounds}")
