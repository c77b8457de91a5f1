"""The hand-written gradients that make the train step fast match autodiff / PyTorch exactly:
max pooling over strided slices (PyTorch's first-maximum tie rule) and train-mode BatchNorm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq.nn import _bn_train
from tests.conftest import torch_or_skip


def _reference_bn(x, scale, bias, eps):
    axes = tuple(range(x.ndim - 1))
    lift = lambda v: v.reshape((1,) * (x.ndim - 1) + v.shape)  # noqa: E731
    mean = jnp.mean(x, axes)
    var = jnp.mean(jnp.square(x - lift(mean)), axes)
    y = (x - lift(mean)) * lift(jax.lax.rsqrt(var + eps) * scale) + lift(bias)
    return y, mean, var


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (2, 7, 3), (64, 8)])
def test_batchnorm_custom_gradient_equals_autodiff(shape, x64):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(3.0, 2.0, size=shape))
    scale = jnp.asarray(rng.normal(size=shape[-1:]))
    bias = jnp.asarray(rng.normal(size=shape[-1:]))
    # cotangents on y, mean and var: gradients through the returned statistics count too
    cots = (jnp.asarray(rng.normal(size=shape)), jnp.asarray(rng.normal(size=shape[-1:])),
            jnp.asarray(rng.normal(size=shape[-1:])))
    ours, vjp = jax.vjp(lambda a, s, b: _bn_train(a, s, b, 1e-5), x, scale, bias)
    ref, ref_vjp = jax.vjp(lambda a, s, b: _reference_bn(a, s, b, 1e-5), x, scale, bias)
    for o, r in zip(ours, ref):
        np.testing.assert_allclose(o, r, rtol=1e-10, atol=1e-10)
    for g, r in zip(vjp(cots), ref_vjp(cots)):
        np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-10)


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


def test_max_pool_second_derivative_and_vmap():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6, 6, 2)), jnp.float32)
    f = lambda a: jnp.sum(jq.max_pool(a, 2) ** 3)  # noqa: E731
    hvp = jax.jvp(jax.grad(f), (x,), (jnp.ones_like(x),))[1]
    assert bool(jnp.all(jnp.isfinite(hvp)))
    batched = jax.vmap(jax.grad(f))(x[:, None])
    np.testing.assert_allclose(batched[:, 0], jax.grad(f)(x), rtol=1e-6)
