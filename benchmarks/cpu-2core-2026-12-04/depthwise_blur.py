"""blur_pool (filter 3, stride 2) forward and input gradient on XLA:CPU: jaxeq's dispatched path
(on CPU the depthwise fast path, jaxeq.kernels.depthwise_slices) against the plain grouped
convolution (lax.conv_general_dilated, feature_group_count = C). Shapes of the blurs in E3's
width-16 ResNet-18 at batch 32. Median of 10 calls after a warm-up; err = max |difference|.

    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= python benchmarks/cpu-2core-2026-12-04/depthwise_blur.py
"""
import time, numpy as np, jax, jax.numpy as jnp
from jaxeq import pool

def plain(x, filter_size, stride, padding, fill):
    filt = pool.binomial_filter(filter_size, 2); c = x.shape[-1]
    k = jnp.broadcast_to(jnp.asarray(filt, x.dtype)[..., None, None], filt.shape + (1, c))
    from jaxeq.conv import padded_conv
    lo = {"same": (filter_size - 1) // 2, "full": filter_size - 1}[padding]
    hi = {"same": filter_size - 1 - (filter_size - 1) // 2, "full": filter_size - 1}[padding]
    return padded_conv(x, k, ((lo, hi), (lo, hi)), fill, (stride, stride), (1, 1), None, c)

def dispatched(x, filter_size, stride, padding, fill):
    return pool.blur_pool(x, filter_size=filter_size, stride=stride, padding=padding, fill=fill)

def timeit(f, *a, n=10):
    jax.block_until_ready(f(*a)); ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return np.median(ts) * 1e3

for shape in [(32, 52, 52, 16), (32, 28, 28, 32), (32, 16, 16, 64)]:
    for padding, fill in (("full", "zeros"), ("same", "reflect")):
        x = jax.random.normal(jax.random.PRNGKey(0), shape)
        row = []
        ref = None
        for name, impl in (("dispatched", dispatched), ("plain_grouped", plain)):
            g = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(impl(x, 3, 2, padding, fill)))))
            fw = jax.jit(lambda x: impl(x, 3, 2, padding, fill))
            y = fw(x)
            if ref is None: ref = y
            err = float(jnp.abs(y - ref).max())
            row.append(f"{name} fwd {timeit(fw, x):.2f} ms grad {timeit(g, x):.2f} ms (err {err:.1e})")
        print(shape, padding, fill, " | ".join(row), flush=True)
