"""jaxeq.kernels.select picks each op's fast path by backend, and every fast path computes what
the plain path in jaxeq.conv / jaxeq.pool / jaxeq.nn computes (the reference on every backend)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import importlib

import jaxeq as jq
from jaxeq import kernels, pool
from jaxeq.kernels import batch_norm, conv_relayout, slice_max
from jaxeq.nn import BatchNorm

conv_module = importlib.import_module("jaxeq.conv")  # the module (jq.conv is the function)


def test_select_by_op_and_backend():
    assert kernels.select("conv", "cpu") is conv_relayout.conv
    assert kernels.select("conv", "gpu") is None and kernels.select("conv", "tpu") is None
    for backend in ("cpu", "gpu", "tpu"):
        assert kernels.select("max_pool", backend) is slice_max.max_pool
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
