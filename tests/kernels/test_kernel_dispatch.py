"""jaxeq.kernels.select picks each op's fast path by backend, and every fast path computes what
the plain path in jaxeq.conv / jaxeq.pool / jaxeq.nn computes (the reference on every backend)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import importlib

import jaxeq as jq
from jaxeq import kernels, pool
from jaxeq.kernels import batch_norm, conv_relayout, depthwise_slices, slice_max
from jaxeq.nn import BatchNorm

conv_module = importlib.import_module("jaxeq.conv")  # the module (jq.conv is the function)


def test_select_by_op_and_backend():
    assert kernels.select("conv", "cpu") is conv_relayout.conv
    assert kernels.select("conv", "gpu") is None and kernels.select("conv", "tpu") is None
    assert kernels.select("depthwise_conv", "cpu") is depthwise_slices.depthwise_conv
    assert kernels.select("depthwise_conv", "gpu") is None
    for backend in ("cpu", "gpu", "tpu"):
        assert kernels.select("max_pool", backend) is slice_max.max_pool
    assert kernels.select("batch_norm", "cpu") is batch_norm.batch_norm_train_cpu
    for backend in ("gpu", "tpu"):
        assert kernels.select("batch_norm", backend) is batch_norm.batch_norm_train
    assert kernels.select("conv") is kernels.select("conv", jax.default_backend())
    with pytest.raises(ValueError, match="op must be one of"):
        kernels.select("dense")


@pytest.fixture
def plain(monkeypatch):
    """Every op takes its plain path while the fixture is active (traced functions only)."""
    monkeypatch.setattr(kernels, "select", lambda op, backend=None: None)


@pytest.mark.parametrize("shape,window,stride,padding,fill", [
    ((2, 9, 10, 3), 3, 2, "same", "neutral"), ((2, 9, 10, 3), 2, 2, "valid", "neutral"),
    ((2, 9, 10, 3), 3, 1, "full", "zeros"), ((2, 11, 4), 3, 2, "same", "circular"),
    ((1, 5, 6, 4, 2), 2, 1, "same", "replicate")])
def test_max_pool_fast_path_equals_reduce_window(shape, window, stride, padding, fill, x64):
    rng = np.random.default_rng(3)
    x = np.maximum(rng.normal(size=shape), 0.0)  # ReLU zeros: ties in whole windows

    def run():
        f = lambda a: jq.max_pool(a, window, stride=stride, padding=padding, fill=fill)  # noqa: E731
        y, vjp = jax.vjp(f, jnp.asarray(x))
        return y, vjp(jnp.asarray(np.random.default_rng(4).normal(size=y.shape)))[0]

    fast = run()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(kernels, "select", lambda op, backend=None: None)
        ref = run()
    np.testing.assert_array_equal(fast[0], ref[0])
    np.testing.assert_allclose(fast[1], ref[1], rtol=1e-12, atol=1e-12)


def test_window_max_is_reduce_window_max():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 7, 7, 3)), jnp.float32)
    got = pool.window_max(x, (3, 3), (2, 2))
    ref = jax.lax.reduce_window(x, -np.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(got, ref)


def _bn_step(x, train=True):
    """Output, updated batch statistics and gradients (params, x) of one BatchNorm call."""
    bn = BatchNorm(dtype=jnp.float64, param_dtype=jnp.float64)
    variables = bn.init(jax.random.key(0), x)
    params = jax.tree.map(lambda v: v + 0.3, variables["params"])
    stats = variables["batch_stats"]

    def loss(p, a):
        y, new = bn.apply({"params": p, "batch_stats": stats}, a, train=train,
                          mutable=["batch_stats"])
        return jnp.sum(jnp.sin(y)), (y, new["batch_stats"])

    (_, (y, new)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)
    return y, new, grads


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (2, 7, 3), (3, 2, 4, 5, 2)])
def test_batchnorm_fast_path_equals_plain_path(shape, x64):
    x = jnp.asarray(np.random.default_rng(6).normal(2.0, 3.0, size=shape))
    fast = _bn_step(x)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(kernels, "select", lambda op, backend=None: None)
        ref = _bn_step(x)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_conv_plain_path_is_padded_conv(plain):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(16, 6, 6, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)
    pairs = jq.padding_pairs("full", (3, 3))
    np.testing.assert_array_equal(
        jq.conv(x, w, padding="full", fill="circular"),
        conv_module.padded_conv(x, w, pairs, "circular", (1, 1), (1, 1), None))


@pytest.mark.parametrize("shape,k,stride,dilation,padding,fill", [
    ((2, 9, 10, 4), 3, 2, 1, "full", "zeros"), ((2, 9, 10, 4), 3, 2, 1, "same", "reflect"),
    ((2, 8, 8, 3), 4, 2, 1, "same", "circular"), ((2, 9, 10, 4), 3, 1, 2, "valid", "replicate"),
    ((2, 11, 5), 5, 3, 1, "full", "zeros"), ((1, 5, 6, 4, 2), 3, (1, 2, 1), 1, "same", "zeros")])
def test_depthwise_fast_path_equals_grouped_conv(shape, k, stride, dilation, padding, fill, x64):
    # values and both gradients (input and kernel) against lax's grouped convolution
    rng = np.random.default_rng(8)
    ndim, c = len(shape) - 2, shape[-1]
    x = jnp.asarray(rng.normal(size=shape))
    w = jnp.asarray(rng.normal(size=(k,) * ndim + (1, c)))
    f = lambda a, b: jq.conv(a, b, stride=stride, dilation=dilation, padding=padding,  # noqa: E731
                             fill=fill, groups=c)
    fast = depthwise_slices.depthwise_conv
    cot = None
    results = []
    for chosen in (lambda op, backend=None: fast if op == "depthwise_conv" else None,
                   lambda op, backend=None: None):  # the fast path, then the grouped conv
        with pytest.MonkeyPatch.context() as m:
            m.setattr(kernels, "select", chosen)
            y, vjp = jax.vjp(f, x, w)
            cot = jnp.asarray(rng.normal(size=y.shape)) if cot is None else cot
            results.append((y, *vjp(cot)))
    for a, b in zip(*results):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_blur_pool_takes_the_depthwise_path_on_cpu_and_keeps_float32_accumulation(monkeypatch):
    calls = []
    fast = depthwise_slices.depthwise_conv
    monkeypatch.setattr(kernels, "select", lambda op, backend=None:
                        (lambda *a: calls.append(op) or fast(*a)) if op == "depthwise_conv" else None)
    x = jnp.asarray(np.random.default_rng(9).normal(size=(2, 12, 12, 5)), jnp.bfloat16)
    y = pool.blur_pool(x, filter_size=3, stride=2, padding="full", fill="zeros")
    assert calls == ["depthwise_conv"] and y.dtype == jnp.bfloat16
    monkeypatch.setattr(kernels, "select", lambda op, backend=None: None)
    ref = pool.blur_pool(x.astype(jnp.float32), filter_size=3, stride=2, padding="full", fill="zeros")
    # accumulated in float32 and rounded once: within half a bfloat16 ulp (8 significant bits)
    # of the float32 result; accumulating in bfloat16 misses that by a few roundings
    ref = np.asarray(ref)
    half_ulp = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(ref), 1e-30))) - 8)
    error = np.abs(np.asarray(y, np.float32) - ref)
    assert bool(np.all(error <= half_ulp * 1.001 + 1e-6)), float(np.max(error / half_ulp))
