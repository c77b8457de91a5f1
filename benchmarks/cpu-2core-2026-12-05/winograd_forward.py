"""Winograd F(2x2, 3x3) written in jax.numpy against XLA:CPU's own convolution and PyTorch
channels_last, one 3x3 stride-1 conv forward per row (ResNet-18 shapes; the first four as at
full padding in a 96 px probe batch of 17, the last two as in a 112 px train batch of 32).

    python benchmarks/cpu-2core-2026-12-05/winograd_forward.py

Each row: medians of 7 alternating calls, and the Winograd result's largest error relative to
the largest output. Then XLA:CPU's GEMM rate for the Winograd product of the largest row
(16 batched 1377x512x512 products, and the same as one GEMM).
"""
import os, time
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
import jax, jax.numpy as jnp, numpy as np, torch
from jax import lax
HI = lax.Precision.HIGHEST

def wino(x, k, pad):
    n, h, w, c = x.shape; K = k.shape[-1]
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    th, tw = -(-ho // 2), -(-wo // 2)
    xp = jnp.pad(x, ((0, 0), (pad, pad + 2 * th - ho), (pad, pad + 2 * tw - wo), (0, 0)))
    d = [[xp[:, i:i + 2 * th:2, j:j + 2 * tw:2, :] for j in range(4)] for i in range(4)]
    def bt(a):  # B^T over a list of 4
        return [a[0] - a[2], a[1] + a[2], a[2] - a[1], a[1] - a[3]]
    rows = [bt([d[i][j] for i in range(4)]) for j in range(4)]  # rows[j][i']
    V = [bt([rows[j][i] for j in range(4)]) for i in range(4)]  # V[i'][j']
    V = jnp.stack([V[i][j] for i in range(4) for j in range(4)]).reshape(16, n * th * tw, c)
    G = jnp.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], k.dtype)
    U = jnp.einsum("ai,ijck,bj->abck", G, k, G, precision=HI).reshape(16, c, K)
    M = lax.dot_general(V, U, (((2,), (1,)), ((0,), (0,))), precision=HI).reshape(4, 4, n, th, tw, K)
    def at(a):
        return [a[0] + a[1] + a[2], a[1] - a[2] - a[3]]
    r = [at([M[i, j] for i in range(4)]) for j in range(4)]  # r[j][p]
    Y = [[at([r[j][p] for j in range(4)])[q] for q in range(2)] for p in range(2)]  # Y[p][q]
    Y = jnp.stack([jnp.stack(Y[p], axis=3) for p in range(2)], axis=2)  # n, th, 2, tw, 2, K
    return Y.reshape(n, 2 * th, 2 * tw, K)[:, :ho, :wo]

def direct(x, k, pad):
    return lax.conv_general_dilated(x, k, (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=HI)

torch.set_num_threads(2)
for (n, h, c, K, pad) in [(17, 15, 512, 512, 2), (17, 13, 256, 256, 2), (17, 20, 128, 128, 2), (17, 27, 64, 64, 2), (32, 28, 64, 64, 1), (32, 7, 512, 512, 1)]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, h, h, c)).astype(np.float32)); k = jnp.asarray((rng.standard_normal((3, 3, c, K)) / np.sqrt(9 * c)).astype(np.float32))
    fw, fd = jax.jit(wino, static_argnums=2), jax.jit(direct, static_argnums=2)
    a, b = fw(x, k, pad), fd(x, k, pad)
    err = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
    xt = torch.from_numpy(np.asarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    kt = torch.from_numpy(np.asarray(k)).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    ts = {"wino": [], "xla": [], "torch": []}
    with torch.no_grad():
        torch.nn.functional.conv2d(xt, kt, padding=pad)
        for r in range(7):
            for nm, fn in (("wino", lambda: jax.block_until_ready(fw(x, k, pad))), ("xla", lambda: jax.block_until_ready(fd(x, k, pad))), ("torch", lambda: torch.nn.functional.conv2d(xt, kt, padding=pad))):
                t0 = time.perf_counter(); fn(); ts[nm].append(time.perf_counter() - t0)
    m = {kk: 1e3 * np.median(v) for kk, v in ts.items()}
    print(f"n{n} {h}x{h} {c}->{K} pad{pad}: winograd {m['wino']:.2f} xla {m['xla']:.2f} "
          f"torch {m['torch']:.2f} ms; rel err {err:.1e}")
V, U = jnp.ones((16, 1377, 512)), jnp.ones((16, 512, 512))
batched = jax.jit(lambda V, U: lax.dot_general(V, U, (((2,), (1,)), ((0,), (0,))), precision=HI))
single = jax.jit(lambda V, U: V.reshape(-1, 512) @ U[0])
for fn, label in ((batched, "16 batched 1377x512x512"), (single, "one 22032x512x512")):
    jax.block_until_ready(fn(V, U))
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(V, U))
        ts.append(time.perf_counter() - t0)
    print(f"GEMM {label}: {1e3 * np.median(ts):.1f} ms, "
          f"{16 * 2 * 1377 * 512 * 512 / np.median(ts) / 1e9:.0f} GFLOP/s")
