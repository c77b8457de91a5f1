"""Layers of jaxeq.nn: shapes, BatchNorm semantics (PyTorch's), pooling layers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeq import nn as jnn
from tests.conftest import torch_or_skip

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("padding,size", [("valid", 12), ("same", 16), ("full", 20)])
def test_conv_output_sizes_and_params(padding, size):
    x = jnp.ones((2, 16, 16, 3))
    layer = jnn.Conv(8, 5, padding=padding, use_bias=True)
    v = layer.init(KEY, x)
    assert v["params"]["kernel"].shape == (5, 5, 3, 8)
    assert v["params"]["bias"].shape == (8,)
    assert layer.apply(v, x).shape == (2, size, size, 8)


def test_conv_groups_and_bad_arguments():
    x = jnp.ones((1, 8, 8, 4))
    v = jnn.Conv(6, 3, groups=2).init(KEY, x)
    assert v["params"]["kernel"].shape == (3, 3, 2, 6)
    with pytest.raises(ValueError, match="fill"):
        jnn.Conv(6, 3, fill="mirror").init(KEY, x)
    with pytest.raises(ValueError, match="padding"):
        jnn.Conv(6, 3, padding="half").init(KEY, x)
    with pytest.raises(ValueError, match="groups"):
        jnn.Conv(6, 3, groups=3).init(KEY, x)


def test_conv_bfloat16_compute_float32_params():
    x = jnp.ones((1, 8, 8, 3))
    layer = jnn.Conv(4, 3, dtype=jnp.bfloat16)
    v = layer.init(KEY, x)
    assert v["params"]["kernel"].dtype == jnp.float32
    assert layer.apply(v, x).dtype == jnp.bfloat16


def test_batchnorm_train_matches_pytorch_update(rng):
    x = rng.standard_normal((4, 5, 5, 3)).astype(np.float32) * 2.0 + 0.5
    bn = jnn.BatchNorm(momentum=0.9)
    v = bn.init(KEY, x, train=False)
    y, new = bn.apply(v, x, train=True, mutable=["batch_stats"])
    flat = x.reshape(-1, 3).astype(np.float64)
    mean, var = flat.mean(0), flat.var(0)
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 3), (flat - mean) / np.sqrt(var + 1e-5),
                               rtol=1e-5, atol=1e-5)
    # PyTorch: running_var takes the unbiased variance; momentum 0.1 there = decay 0.9 here.
    np.testing.assert_allclose(new["batch_stats"]["mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(new["batch_stats"]["var"], 0.9 + 0.1 * flat.var(0, ddof=1),
                               rtol=1e-5)
    # eval uses the running statistics
    ye = bn.apply({"params": v["params"], "batch_stats": new["batch_stats"]}, x, train=False)
    stats = {k: np.asarray(a) for k, a in new["batch_stats"].items()}
    want = (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5)
    np.testing.assert_allclose(ye, want, rtol=1e-5, atol=1e-5)


def test_batchnorm_variance_is_stable_for_large_means(rng):
    # E[x^2] - E[x]^2 in float32 would lose every digit here; the shifted pass does not.
    x = (1e4 + rng.standard_normal((8, 4, 4, 2))).astype(np.float32)
    bn = jnn.BatchNorm()
    v = bn.init(KEY, x, train=False)
    _, new = bn.apply(v, x, train=True, mutable=["batch_stats"])
    want = 0.9 + 0.1 * x.reshape(-1, 2).astype(np.float64).var(0, ddof=1)
    np.testing.assert_allclose(new["batch_stats"]["var"], want, rtol=1e-3)


def test_batchnorm_axis_name_equals_full_batch(rng):
    x = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    bn = jnn.BatchNorm(axis_name="shards")
    v = jnn.BatchNorm().init(KEY, x, train=False)
    full, full_new = jnn.BatchNorm().apply(v, x, train=True, mutable=["batch_stats"])
    split = jax.vmap(lambda xs: bn.apply(v, xs, train=True, mutable=["batch_stats"]),
                     axis_name="shards")(x.reshape(2, 2, 3, 3, 2))
    np.testing.assert_allclose(split[0].reshape(full.shape), full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split[1]["batch_stats"]["var"][0], full_new["batch_stats"]["var"],
                               rtol=1e-5)


def test_pool_layers_shapes():
    x = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
    assert jnn.MaxPool(3, strides=2, padding="same").apply({}, x).shape == (2, 4, 4, 3)
    assert jnn.AvgPool(2).apply({}, x).shape == (2, 4, 4, 3)
    assert jnn.BlurPool(3, strides=2, padding="full", fill="zeros").apply({}, x).shape == \
        (2, 5, 5, 3)


@pytest.mark.parametrize("n_in,n_out", [(12, 7), (2, 7), (7, 7), (9, 4)])
def test_adaptive_avg_pool_matches_pytorch(n_in, n_out, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, n_in, n_in + 1, 3)).astype(np.float32)
    got = jnn.AdaptiveAvgPool(n_out).apply({}, x)
    want = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(x).permute(0, 3, 1, 2), n_out).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_conv_refuses_an_input_with_other_channels_than_it_was_built_for():
    layer = jnn.Conv(4, 3)
    v = layer.init(KEY, jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"^x must have shape \(N, \*spatial, C\) with C=3, the "
                                         r"channels 'Conv' was built for; got shape "
                                         r"\(1, 3, 8, 8\)"):
        layer.apply(v, jnp.ones((1, 3, 8, 8)))
