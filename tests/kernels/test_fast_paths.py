"""The fast paths of jaxeq.kernels match the plain paths (and autodiff / PyTorch) exactly:
max pooling over strided slices (PyTorch's first-maximum tie rule), train-mode BatchNorm, and the
CPU convolution whose weight gradient reads its input through an identity GEMM."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import importlib

import jaxeq as jq
from jaxeq import kernels
from jaxeq.kernels.batch_norm import batch_norm_train, batch_norm_train_cpu
from jaxeq.kernels import conv_relayout
from tests.conftest import torch_or_skip


def _reference_bn(x, scale, bias, eps):
    axes = tuple(range(x.ndim - 1))
    lift = lambda v: v.reshape((1,) * (x.ndim - 1) + v.shape)  # noqa: E731
    mean = jnp.mean(x, axes)
    var = jnp.mean(jnp.square(x - lift(mean)), axes)
    y = (x - lift(mean)) * lift(jax.lax.rsqrt(var + eps) * scale) + lift(bias)
    return y, mean, var


@pytest.mark.parametrize("bn_train", [batch_norm_train, batch_norm_train_cpu])
@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (2, 7, 3), (64, 8), (2, 3, 5, 256)])
def test_batchnorm_custom_gradient_equals_autodiff(shape, bn_train, x64):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(3.0, 2.0, size=shape))
    scale = jnp.asarray(rng.normal(size=shape[-1:]))
    bias = jnp.asarray(rng.normal(size=shape[-1:]))
    # cotangents on y, mean and var: gradients through the returned statistics count too
    cots = (jnp.asarray(rng.normal(size=shape)), jnp.asarray(rng.normal(size=shape[-1:])),
            jnp.asarray(rng.normal(size=shape[-1:])))
    ours, vjp = jax.vjp(lambda a, s, b: bn_train(a, s, b, 1e-5), x, scale, bias)
    ref, ref_vjp = jax.vjp(lambda a, s, b: _reference_bn(a, s, b, 1e-5), x, scale, bias)
    for o, r in zip(ours, ref):
        np.testing.assert_allclose(o, r, rtol=1e-10, atol=1e-10)
    for g, r in zip(vjp(cots), ref_vjp(cots)):
        np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-10)


def test_cpu_batchnorm_takes_gemv_sums_from_256_channels():
    def dots(c):
        x = jnp.ones((2, 4, 4, c))
        f = lambda a: batch_norm_train_cpu(a, jnp.ones(c), jnp.zeros(c), 1e-5)[0].sum()  # noqa: E731
        return str(jax.make_jaxpr(jax.grad(f))(x)).count("dot_general")
    assert dots(255) == 0 and dots(256) == 2


@pytest.mark.parametrize("m", [1, 7, 128, 300, 512, 1000, 1021, 4096 * 3])
def test_row_sum_gemv_is_the_column_sum(m, x64):
    from jaxeq.kernels.batch_norm import row_sum_gemv
    a = np.random.default_rng(m).normal(size=(m, 5))
    got = row_sum_gemv(jnp.asarray(a))
    assert got.shape == (1, 5)
    np.testing.assert_allclose(got, a.sum(0, keepdims=True), rtol=1e-12, atol=1e-12)


def test_row_sum_gemv_rounds_like_a_blocked_sum_in_float32():
    from jaxeq.kernels.batch_norm import channel_sum, row_sum_gemv
    a = np.random.default_rng(0).normal(1.0, 1.0, size=(32 * 56 * 56, 8)).astype(np.float32)
    exact = a.astype(np.float64).sum(0)
    err = lambda s: np.max(np.abs(np.asarray(s, np.float64)[0] - exact) / np.abs(exact))  # noqa: E731
    # one long float32 GEMV over 100k rows rounds ~10-50x worse than this
    assert err(row_sum_gemv(jnp.asarray(a))) <= 4 * max(err(channel_sum(jnp.asarray(a))), 1e-7)


@pytest.mark.parametrize("window,stride,padding", [(2, 2, "valid"), (3, 2, "same"),
                                                   (3, 1, "same"), (2, 1, "valid"),
                                                   (3, 3, "full")])
def test_max_pool_gradient_breaks_ties_like_torch(window, stride, padding):
    """After a ReLU whole windows are zero: the gradient must go where PyTorch sends it."""
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    x = np.maximum(rng.normal(size=(2, 9, 10, 3)), 0.0).astype(np.float32)
    x[:, 2:5, 3:7] = 0.0
    x[0, 6, 6:8] = 1.5  # an exact tie between two positive values
    pairs = jq.padding_pairs(padding, (window, window), stride=stride)
    y, vjp = jax.vjp(lambda a: jq.max_pool(a, window, stride=stride, padding=padding), x)
    cot = rng.normal(size=y.shape).astype(np.float32)

    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))).requires_grad_(True)
    if padding == "full":  # torch limits implicit pads to window // 2: pad with -inf by hand
        (lo, hi), _ = pairs
        xin = torch.nn.functional.pad(xt, [lo, hi, lo, hi], value=-np.inf)
        yt = torch.nn.functional.max_pool2d(xin, window, stride=stride)
    else:
        yt = torch.nn.functional.max_pool2d(xt, window, stride=stride, padding=pairs[0][0])
    np.testing.assert_array_equal(np.asarray(y), np.moveaxis(yt.detach().numpy(), 1, -1))
    yt.backward(torch.from_numpy(np.ascontiguousarray(np.moveaxis(cot, -1, 1))))
    np.testing.assert_allclose(vjp(cot)[0], np.moveaxis(xt.grad.numpy(), 1, -1), rtol=1e-6,
                               atol=1e-6)


def test_max_pool_second_derivative_and_vmap(monkeypatch):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6, 6, 2)), jnp.float32)
    f = lambda a: jnp.sum(jq.max_pool(a, 2) ** 3)  # noqa: E731
    hvp = jax.jvp(jax.grad(f), (x,), (jnp.ones_like(x),))[1]
    with monkeypatch.context() as m:  # the plain reduce_window path (no ties in normal data)
        m.setattr(kernels, "select", lambda op, backend=None: None)
        hvp_plain = jax.jvp(jax.grad(f), (x,), (jnp.ones_like(x),))[1]
    assert float(jnp.max(jnp.abs(hvp_plain))) > 0
    np.testing.assert_allclose(hvp, hvp_plain, rtol=1e-6)
    batched = jax.vmap(jax.grad(f))(x[:, None])
    np.testing.assert_allclose(batched[:, 0], jax.grad(f)(x), rtol=1e-6)


_conv_module = importlib.import_module("jaxeq.conv")  # the module (jq.conv is the function)


def _plain_conv(x, w, padding, fill, stride, dilation):
    """jaxeq's convolution without the CPU weight-gradient path: pad, then lax's VALID conv."""
    nd = w.ndim - 2
    pairs = jq.padding_pairs(padding, w.shape[:nd], stride=stride, dilation=dilation, ndim=nd)
    return jax.lax.conv_general_dilated(
        _conv_module.pad(x, pairs, fill), w, (stride,) * nd, "VALID", rhs_dilation=(dilation,) * nd,
        dimension_numbers=_conv_module._DIMENSION_NUMBERS[nd])


@pytest.mark.parametrize("nd,batch,fill", [
    (1, 16, "zeros"), (1, 16, "circular"), (2, 32, "zeros"), (2, 32, "circular"),
    (2, 24, "reflect"), (2, 24, "replicate"), (3, 8, "zeros"), (3, 8, "circular")])
@pytest.mark.parametrize("padding", ["valid", "same", "full"])
def test_cpu_conv_weight_gradient_path_is_bitwise_autodiff(nd, batch, fill, padding):
    """Values, both cotangents (VJP) and the JVP equal those of the plain padded convolution bit
    for bit, at strides and dilations 1 and 2 (F-Conv at stride 1 takes the pad-first branch)."""
    assert jax.default_backend() != "cpu" or conv_relayout.batch_block(batch, jax.device_count())
    rng = np.random.default_rng(nd * 100 + batch)
    spatial = {1: (9,), 2: (9, 8), 3: (5, 6, 4)}[nd]
    for stride, dilation in [(1, 1), (2, 1), (1, 2), (2, 2)]:
        x = jnp.asarray(rng.normal(size=(batch,) + spatial + (3,)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(3,) * nd + (3, 5)), jnp.float32)
        ours = lambda a, b: jq.conv(a, b, padding=padding, fill=fill, stride=stride,  # noqa: E731
                                    dilation=dilation)
        plain = lambda a, b: _plain_conv(a, b, padding, fill, stride, dilation)  # noqa: E731
        try:  # kernel larger than the padded input, or a reflect pad >= the input size
            jq.padding_pairs(padding, w.shape[:nd], stride=stride, dilation=dilation,
                             input_size=spatial)
            y_ref, vjp_ref = jax.vjp(plain, x, w)
        except ValueError:
            with pytest.raises(ValueError):  # jq.conv refuses it too
                ours(x, w)
            continue
        y, vjp = jax.vjp(ours, x, w)
        if jax.default_backend() == "cpu":  # the fast path ran, not the plain one again
            assert "custom_jvp_call" in str(jax.make_jaxpr(ours)(x, w))
        np.testing.assert_array_equal(y, y_ref)
        g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
        for a, b in zip(vjp(g), vjp_ref(g)):
            np.testing.assert_array_equal(a, b)
        tangents = (jnp.asarray(rng.normal(size=x.shape), jnp.float32),
                    jnp.asarray(rng.normal(size=w.shape), jnp.float32))
        np.testing.assert_array_equal(jax.jvp(ours, (x, w), tangents)[1],
                                      jax.jvp(plain, (x, w), tangents)[1])


def test_cpu_conv_path_composes_with_jit_vmap_and_second_derivatives():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(3, 16, 6, 6, 2)), jnp.float32)  # vmapped over axis 0
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)

    def loss(w, x, conv):
        return jnp.sum(jnp.tanh(conv(x, w)) ** 2)

    ours = lambda a, b: jq.conv(a, b, padding="full")  # noqa: E731
    plain = lambda a, b: _plain_conv(a, b, "full", "zeros", 1, 1)  # noqa: E731
    per_sample = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, None)), static_argnums=2)
    np.testing.assert_allclose(per_sample(w, x, ours), per_sample(w, x, plain), rtol=1e-6)
    def hvp(conv):  # forward-over-reverse: the JVP of the weight gradient
        grad_w = jax.grad(lambda b: loss(b, x[0], conv))
        return jax.jvp(grad_w, (w,), (jnp.ones_like(w),))[1]
    np.testing.assert_allclose(hvp(ours), hvp(plain), rtol=1e-5, atol=1e-6)
    # gradient with respect to the input only (the weight tangent is a symbolic zero)
    gx = jax.grad(lambda a: loss(w, a, ours))(x[0])
    np.testing.assert_array_equal(gx, jax.grad(lambda a: loss(w, a, plain))(x[0]))


@pytest.mark.parametrize("n,shards,block", [
    (32, 1, 32), (64, 1, 64), (128, 1, 64), (200, 1, 50), (96, 1, 48), (7, 1, 0), (37, 1, 37),
    (67, 1, 0), (1, 1, 0), (8, 1, 8), (32, 2, 16), (32, 8, 0), (256, 8, 32), (30, 4, 30)])
def test_batch_block_sizes(n, shards, block):
    assert conv_relayout.batch_block(n, shards) == block


def test_batch_to_last_is_an_exact_transpose_and_weight_gradients_keep_their_edge_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 5, 4)).astype(np.float32)
    x[0, 0, 0, 0], x[1, 1, 1, 1], x[2, 2, 2, 2] = 3e38, -1.2e-38, 1e-30  # largest, smallest normal
    got = conv_relayout.batch_to_last(jnp.asarray(x), 8)
    np.testing.assert_array_equal(got, np.transpose(x, (3, 1, 2, 0)))

    w = jnp.asarray(rng.normal(size=(3, 3, 4, 3)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(16, 3, 5, 3)), jnp.float32)
    grad_w = lambda conv, a: jax.vjp(lambda b: conv(a, b), w)[1](g)[0]  # noqa: E731
    plain = lambda a, b: _plain_conv(a, b, "same", "zeros", 1, 1)  # noqa: E731
    # Subnormal inputs (the GEMM reads them as zero, as XLA:CPU's conv kernels do): same bits.
    tiny = jnp.asarray(x * 1e-36)
    np.testing.assert_array_equal(grad_w(jq.conv, tiny), grad_w(plain, tiny))
    # An inf in input channel c: the GEMM's 0 * inf makes NaN in the other batch entries of that
    # (position, channel), so only dW[..., c, :] is non-finite, exactly where it is without it.
    x_inf = x.copy()
    x_inf[3, 1, 2, 1] = np.inf
    ours, ref = grad_w(jq.conv, jnp.asarray(x_inf)), grad_w(plain, jnp.asarray(x_inf))
    np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(ref))
    assert not np.isfinite(np.asarray(ref)[:, :, 1]).all()
    finite = np.isfinite(np.asarray(ref))
    np.testing.assert_array_equal(np.asarray(ours)[finite], np.asarray(ref)[finite])


_SHARDED_SCRIPT = r"""
import re
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jaxeq as jq
mesh = Mesh(np.array(jax.devices()), ("data",))
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 12, 12, 8)).astype(np.float32)
w = rng.normal(size=(3, 3, 8, 16)).astype(np.float32)
loss = lambda w, x: jnp.sum(jnp.tanh(jq.conv(x, w, padding="full")) ** 2)
grad = jax.jit(jax.grad(loss))
xs = jax.device_put(x, NamedSharding(mesh, P("data")))
ws = jax.device_put(w, NamedSharding(mesh, P()))
hlo = grad.lower(ws, xs).compile().as_text()
print(re.findall(r"= (\S+?)\{[^}]*\} (all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)\(", hlo))
one = jax.device_put(x, jax.devices()[0]), jax.device_put(w, jax.devices()[0])
ref = jax.jit(jax.grad(loss))(one[1], one[0])
print(float(np.abs(np.asarray(grad(ws, xs)) - np.asarray(ref)).max() / np.abs(np.asarray(ref)).max()))
"""


def test_cpu_conv_path_keeps_data_parallel_weight_gradients_local():
    """With the batch split over 2 devices, each identity GEMM stays within one device's samples:
    the only collective is the weight gradient's all-reduce (a block straddling the two shards
    would all-reduce a whole activation)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    collectives, rel_diff = out.stdout.strip().splitlines()[-2:]
    assert collectives == "[('f32[3,3,8,16]', 'all-reduce')]"
    assert float(rel_diff) < 1e-5


@pytest.mark.parametrize("batch", [4, 8])
@pytest.mark.parametrize("spatial,padding", [((2, 2), "same"), ((1, 2), "full"), ((2,), "same"),
                                             ((3, 3), "same")])
def test_cpu_conv_on_tiny_maps_equals_the_plain_conv(batch, spatial, padding):
    """The zero pad kept out of the conv window on tiny maps changes values and derivatives only
    by float rounding (another summation order)."""
    rng = np.random.default_rng(batch + len(spatial))
    nd = len(spatial)
    x = jnp.asarray(rng.normal(size=(batch,) + spatial + (4,)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3,) * nd + (4, 6)), jnp.float32)
    ours = jax.jit(lambda a, b: jq.conv(a, b, padding=padding))
    plain = jax.jit(lambda a, b: _plain_conv(a, b, padding, "zeros", 1, 1))
    y, vjp = jax.vjp(ours, x, w)
    y_ref, vjp_ref = jax.vjp(plain, x, w)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    for a, b in zip(vjp(g), vjp_ref(g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    t = (jnp.ones_like(x), jnp.ones_like(w))
    np.testing.assert_allclose(jax.jvp(ours, (x, w), t)[1], jax.jvp(plain, (x, w), t)[1],
                               rtol=1e-5, atol=1e-5)
    if jax.default_backend() == "cpu" and max(spatial) <= 2:
        assert "optimization_barrier" in ours.lower(x, w).as_text()  # the pad stays out of the window
