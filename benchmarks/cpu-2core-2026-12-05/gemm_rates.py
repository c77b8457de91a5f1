"""fp32 GEMM rates on this CPU: XLA:CPU (whatever XLA_FLAGS the process has) and PyTorch.

    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/cpu-2core-2026-12-05/gemm_rates.py
    XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_use_onednn=true \\
      --xla_cpu_experimental_onednn_fusion_type=dot" python benchmarks/cpu-2core-2026-12-05/gemm_rates.py

Shapes: a square reference, the Winograd product of winograd_forward.py's largest row, and
the im2col GEMMs of a 3x3 conv at 64 and 128 channels. 7 rounds alternating the two sides
(order rotating; 3 untimed calls of the same side before each timed one), medians.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxeq.bench.harness import time_alternating

SHAPES = [(4096, 4096, 4096), (22032, 512, 512), (6272, 576, 64), (13328, 1152, 128)]

torch.set_num_threads(2)
print("XLA_FLAGS:", os.environ.get("XLA_FLAGS", ""))
dot = jax.jit(lambda a, b: jnp.dot(a, b, precision="highest"))
for m, k, n in SHAPES:
    a, b = jnp.ones((m, k)), jnp.ones((k, n))
    ta, tb = torch.ones(m, k), torch.ones(k, n)
    times = time_alternating({"xla": lambda: jax.block_until_ready(dot(a, b)),
                              "torch": lambda: ta @ tb}, repeats=7, warmup=2, settle=3)
    t_xla, t_torch = (float(np.median(times[s])) for s in ("xla", "torch"))
    gf = 2 * m * k * n / 1e9
    print(f"{m}x{k}x{n}: xla {1e3 * t_xla:.1f} ms {gf / t_xla:.0f} GFLOP/s, "
          f"torch {1e3 * t_torch:.1f} ms {gf / t_torch:.0f} GFLOP/s")
