"""Where a ResNet train step's time goes, per fused XLA op (jax.profiler trace of one step).

    python benchmarks/cpu-2core-2026-12-04/bn_backward_profile.py resnet50 full 8 [blocks|gemv]

``blocks``: every BatchNorm backward sums by row blocks (the fast path before 2026-12-04);
``gemv``: the CPU fast path (GEMV sums from 256 channels). Prints the step time and the traced
time per fusion kind (names as XLA:CPU's thunks), the largest first.
"""
import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import jaxeq.kernels as K  # noqa: E402
from jaxeq.bench import model_steps as ms  # noqa: E402

name, padding, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
variant = sys.argv[4] if len(sys.argv) > 4 else "gemv"
K._FAST_PATHS[("batch_norm", "cpu")] = "jaxeq.kernels.batch_norm:" + {
    "blocks": "batch_norm_train", "gemv": "batch_norm_train_cpu"}[variant]
model, variables, _, x, y = ms.setup(name, padding, batch, 112, "cpu")
tx = optax.sgd(0.01, momentum=0.9)
step = jax.jit(ms.make_train_step(model, tx))
state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
x, y = jnp.asarray(x), jnp.asarray(y)
for _ in range(2):
    jax.block_until_ready(step(state, x, y))
out = tempfile.mkdtemp()
jax.profiler.start_trace(out)
t0 = time.perf_counter()
jax.block_until_ready(step(state, x, y))
wall = time.perf_counter() - t0
jax.profiler.stop_trace()
trace = json.load(gzip.open(glob.glob(out + "/plugins/profile/*/*.trace.json.gz")[0]))
kinds = collections.Counter()
for e in trace["traceEvents"]:
    n = e.get("name", "")
    if e.get("ph") != "X" or n.startswith("$") or "Thunk" in n or "Pjit" in n:
        continue
    kinds[n.rsplit(".", 1)[0] if n.rsplit(".", 1)[-1].isdigit() else n] += e["dur"] / 1e3
print(f"{name} {padding} b{batch} {variant}: traced step {wall:.2f} s, fused ops "
      f"{sum(kinds.values()):.0f} ms")
for k, ms_ in kinds.most_common(8):
    print(f"  {ms_:8.1f} ms  {k}")
