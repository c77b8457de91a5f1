"""Timing XLA and PyTorch alternately in one process: what PyTorch's idle worker threads cost
the XLA call after them, and what settling calls (`harness.time_alternating(settle=...)`) do.

    python benchmarks/cpu-2core-2026-12-05/alternating_with_torch.py
    OMP_WAIT_POLICY=PASSIVE python benchmarks/cpu-2core-2026-12-05/alternating_with_torch.py

One 3x3 conv forward, 17x25x25x64 -> 64, pad 2 (a full-padding ResNet-18 layer1 conv at 96 px),
XLA:CPU and PyTorch channels_last, both on 2 threads: each alone, then alternating with 0, 1 and
3 untimed calls of the same side before each timed one; medians of 15 rounds.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from jax import lax  # noqa: E402

from jaxeq.bench.harness import time_alternating  # noqa: E402

torch.set_num_threads(2)
rng = np.random.default_rng(0)
x = jnp.asarray(rng.standard_normal((17, 25, 25, 64)).astype(np.float32))
kernel = jnp.asarray((rng.standard_normal((3, 3, 64, 64)) / 24).astype(np.float32))
conv = jax.jit(lambda a, b: lax.conv_general_dilated(
    a, b, (1, 1), ((2, 2), (2, 2)), dimension_numbers=("NHWC", "HWIO", "NHWC")))
xt = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
kt = torch.tensor(np.asarray(kernel)).permute(3, 2, 0, 1).contiguous(
    memory_format=torch.channels_last)
sides = {"xla": lambda: jax.block_until_ready(conv(x, kernel)),
         "torch": lambda: torch.nn.functional.conv2d(xt, kt, padding=2)}
print("OMP_WAIT_POLICY:", os.environ.get("OMP_WAIT_POLICY", "(unset)"))
with torch.no_grad():
    for name, fn in sides.items():
        t = time_alternating({name: fn}, repeats=15, warmup=3)[name]
        print(f"{name} alone: {1e3 * np.median(t):.2f} ms")
    for settle in (0, 1, 3):
        t = time_alternating(sides, repeats=15, warmup=3, settle=settle)
        print(f"alternating, settle={settle}: xla {1e3 * np.median(t['xla']):.2f} ms, "
              f"torch {1e3 * np.median(t['torch']):.2f} ms")
