"""Each convolution of a ResNet-18 forward alone, XLA:CPU against PyTorch channels_last.

    python benchmarks/cpu-2core-2026-12-05/conv_per_layer.py full 17 96

The convolutions (input and kernel shapes, window) are read from the compiled eval forward of
jaxeq's ResNet-18 at that padding, batch and size; each runs alone as a jitted
`lax.conv_general_dilated` and as `torch.nn.functional.conv2d` on channels_last tensors, 7 rounds alternating the two (order
rotating; 3 untimed calls of the same side before each timed one), medians. Last line: the sum over the network, and the whole forward.
"""
import os
import re
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from jax import lax  # noqa: E402

from jaxeq.bench import model_steps as ms  # noqa: E402
from jaxeq.bench.harness import time_alternating  # noqa: E402

padding, batch, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
model, variables, _, x, _ = ms.setup("resnet18", padding, batch, size, "cpu")
forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
x = jnp.asarray(x)
hlo = forward.lower(variables, x).compile().as_text()
shapes = {m[1]: tuple(map(int, m[2].split(","))) for m in re.finditer(
    r"^\s+(?:ROOT )?%(\S+) = f32\[([\d,]+)\]", hlo, re.M)}
convs: dict[tuple, int] = {}
for m in re.finditer(r"convolution\(%(\S+), %(\S+)\), window=\{([^}]*)\}", hlo):
    key = (shapes[m[1]], shapes[m[2]], m[3])
    convs[key] = convs.get(key, 0) + 1


rng = np.random.default_rng(0)
total_xla = total_torch = 0.0
for (xs, ks, window), count in convs.items():
    stride = int((re.search(r"stride=(\d+)", window) or [0, 1])[1])
    pads = re.search(r"pad=(\d+)_(\d+)x(\d+)_(\d+)", window)
    (top, bottom, left, right) = map(int, pads.groups()) if pads else (0, 0, 0, 0)
    xj = jnp.asarray(rng.standard_normal(xs).astype(np.float32))
    kj = jnp.asarray((rng.standard_normal(ks) / np.sqrt(np.prod(ks[:3]))).astype(np.float32))
    conv = jax.jit(lambda a, b: lax.conv_general_dilated(
        a, b, (stride, stride), ((top, bottom), (left, right)),
        dimension_numbers=("NHWC", "HWIO", "NHWC")))
    xt = torch.tensor(np.asarray(xj)).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)
    kt = torch.tensor(np.asarray(kj)).permute(3, 2, 0, 1).contiguous(
        memory_format=torch.channels_last)
    with torch.no_grad():
        assert (top, left) == (bottom, right), window  # conv2d's padding is symmetric

        def torch_conv():
            return torch.nn.functional.conv2d(xt, kt, stride=stride, padding=(top, left))
        times = time_alternating({"xla": lambda: jax.block_until_ready(conv(xj, kj)),
                                  "torch": torch_conv}, repeats=7, warmup=2, settle=3)
        t_xla, t_torch = (1e3 * float(np.median(times[k])) for k in ("xla", "torch"))
    total_xla += count * t_xla
    total_torch += count * t_torch
    print(f"x{count} in {xs} kernel {ks} {window}: xla {t_xla:.2f} ms, torch {t_torch:.2f} ms, "
          f"torch/xla {t_torch / t_xla:.2f}")
whole = 1e3 * float(np.median(time_alternating(
    {"forward": lambda: jax.block_until_ready(forward(variables, x))}, repeats=7)["forward"]))
print(f"sum over the network: xla {total_xla:.1f} ms, torch {total_torch:.1f} ms, torch/xla "
      f"{total_torch / total_xla:.2f}; whole jaxeq forward {whole:.1f} ms")
