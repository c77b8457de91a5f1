"""Winograd F(2x2, 3x3) written in jax.numpy against XLA:CPU's own convolution and PyTorch
channels_last, one 3x3 stride-1 conv forward per row (ResNet-18 shapes; the first four as at
full padding in a 96 px probe batch of 17, the last two as in a 112 px train batch of 32).

    python benchmarks/cpu-2core-2026-12-05/winograd_forward.py

Each row: medians of 7 rounds alternating the three (order rotating; 3 untimed
calls of the same side before each timed one), and the Winograd result's
largest error relative to the largest output. Then XLA:CPU's GEMM rate for the Winograd
product of the largest row (16 batched 1377x512x512 products, and the same as one GEMM).
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from jax import lax  # noqa: E402

from jaxeq.bench.harness import time_alternating  # noqa: E402

HI = lax.Precision.HIGHEST
# F(2x2, 3x3): input transform B^T, kernel transform G, output transform A^T
G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)


def input_transform(d):
    """B^T applied along one axis of 4 tiles given as a list."""
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def output_transform(m):
    """A^T applied along one axis of 4 products given as a list."""
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def winograd_conv(x, kernel, pad):
    n, h, w, c = x.shape
    k_out = kernel.shape[-1]
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    th, tw = -(-ho // 2), -(-wo // 2)  # 2x2 output tiles
    xp = jnp.pad(x, ((0, 0), (pad, pad + 2 * th - ho), (pad, pad + 2 * tw - wo), (0, 0)))
    tiles = [[xp[:, i:i + 2 * th:2, j:j + 2 * tw:2, :] for j in range(4)] for i in range(4)]
    cols = [input_transform([tiles[i][j] for i in range(4)]) for j in range(4)]
    v = [input_transform([cols[j][i] for j in range(4)]) for i in range(4)]
    v = jnp.stack([v[i][j] for i in range(4) for j in range(4)]).reshape(16, n * th * tw, c)
    u = jnp.einsum("ai,ijck,bj->abck", G, kernel, G, precision=HI).reshape(16, c, k_out)
    m = lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))), precision=HI)
    m = m.reshape(4, 4, n, th, tw, k_out)
    rows = [output_transform([m[i, j] for i in range(4)]) for j in range(4)]
    y = [[output_transform([rows[j][p] for j in range(4)])[q] for q in range(2)]
         for p in range(2)]
    y = jnp.stack([jnp.stack(y[p], axis=3) for p in range(2)], axis=2)  # (n, th, 2, tw, 2, K)
    return y.reshape(n, 2 * th, 2 * tw, k_out)[:, :ho, :wo]


def direct_conv(x, kernel, pad):
    return lax.conv_general_dilated(x, kernel, (1, 1), ((pad, pad), (pad, pad)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=HI)


torch.set_num_threads(2)
ROWS = [(17, 15, 512, 512, 2), (17, 13, 256, 256, 2), (17, 20, 128, 128, 2),
        (17, 27, 64, 64, 2), (32, 28, 64, 64, 1), (32, 7, 512, 512, 1)]
winograd, direct = jax.jit(winograd_conv, static_argnums=2), jax.jit(direct_conv, static_argnums=2)
for n, size, c, k_out, pad in ROWS:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, size, size, c)).astype(np.float32))
    kernel = jnp.asarray((rng.standard_normal((3, 3, c, k_out)) / np.sqrt(9 * c))
                         .astype(np.float32))
    ref = direct(x, kernel, pad)
    err = float(jnp.max(jnp.abs(winograd(x, kernel, pad) - ref)) / jnp.max(jnp.abs(ref)))
    xt = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)
    kt = torch.tensor(np.asarray(kernel)).permute(3, 2, 0, 1).contiguous(
        memory_format=torch.channels_last)
    with torch.no_grad():
        times = time_alternating({
            "winograd": lambda: jax.block_until_ready(winograd(x, kernel, pad)),
            "xla": lambda: jax.block_until_ready(direct(x, kernel, pad)),
            "torch": lambda: torch.nn.functional.conv2d(xt, kt, padding=pad)},
            repeats=7, warmup=2, settle=3)
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    print(f"n{n} {size}x{size} {c}->{k_out} pad{pad}: winograd {ms['winograd']:.2f} "
          f"xla {ms['xla']:.2f} torch {ms['torch']:.2f} ms; rel err {err:.1e}")

v, u = jnp.ones((16, 1377, 512)), jnp.ones((16, 512, 512))
batched = jax.jit(lambda v, u: lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))), precision=HI))
single = jax.jit(lambda v, u: v.reshape(-1, 512) @ u[0])
times = time_alternating({"16 batched 1377x512x512": lambda: jax.block_until_ready(batched(v, u)),
                          "one 22032x512x512": lambda: jax.block_until_ready(single(v, u))},
                         repeats=7, warmup=2, settle=3)
for label, t in times.items():
    print(f"GEMM {label}: {1e3 * np.median(t):.1f} ms, "
          f"{16 * 2 * 1377 * 512 * 512 / np.median(t) / 1e9:.0f} GFLOP/s")
