"""Parity of the core pure functions with PyTorch (same weights, every padding mode and fill).

The torch reference pads with ``F.pad`` (or ``nn.Conv*(padding_mode=...)``) and convolves with
``padding=0``; jaxeq kernels are (*k, C_in/groups, C_out), torch's (C_out, C_in/groups, *k).
"""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from tests.conftest import torch_or_skip

torch = torch_or_skip()
F = torch.nn.functional

TORCH_PAD_MODE = {"zeros": "constant", "circular": "circular", "reflect": "reflect",
                  "replicate": "replicate"}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def to_torch(x):
    """(N, *spatial, C) -> (N, C, *spatial) torch tensor."""
    x = np.asarray(x)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def from_torch(t):
    return np.moveaxis(t.detach().numpy(), 1, -1)


def kernel_to_torch(k):
    """(*k, I, O) -> (O, I, *k)."""
    k = np.asarray(k)
    nd = k.ndim - 2
    return torch.from_numpy(np.ascontiguousarray(np.transpose(k, (nd + 1, nd) + tuple(range(nd)))))


def torch_pads(pairs):
    """jaxeq pairs (per dim, first dim first) -> F.pad's flat list (last dim first)."""
    return [v for lo, hi in reversed(pairs) for v in (lo, hi)]


def assert_close(ours, ref, tol=1e-4):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(ours - ref).max()) / scale
    assert err < tol, f"max abs diff / scale = {err:.3g}"


def torch_conv(x, k, *, stride, dilation, pairs, fill, groups):
    xt = to_torch(x).requires_grad_(True)
    kt = kernel_to_torch(k).requires_grad_(True)
    nd = np.ndim(k) - 2
    xp = F.pad(xt, torch_pads(pairs), mode=TORCH_PAD_MODE[fill])
    y = TORCH_CONV[nd](xp, kt, stride=stride, dilation=dilation, groups=groups)
    return xt, kt, y


def _cases():
    rng = np.random.default_rng(1)
    cases = []
    for nd, padding, fill in itertools.product((1, 2, 3), jq.PADDINGS, jq.FILLS):
        if padding == "valid" and fill != "zeros":
            continue  # fill is irrelevant without padding
        per_combo = 6 if nd == 2 else 2
        for _ in range(per_combo):
            k = int(rng.integers(1, 6))
            stride = int(rng.integers(1, 4))
            dilation = int(rng.integers(1, 3))
            groups = int(rng.choice([1, 2]))
            cases.append((nd, padding, fill, k, stride, dilation, groups))
    return cases


@pytest.mark.parametrize("nd,padding,fill,k,stride,dilation,groups", _cases())
def test_conv_matches_torch_values_and_gradients(nd, padding, fill, k, stride, dilation, groups):
    rng = np.random.default_rng(hash((nd, padding, fill, k, stride, dilation, groups)) % 2**32)
    span = dilation * (k - 1) + 1
    size = max(9 if nd < 3 else 6, span + 1)  # reflect needs pads < size; valid needs size >= span
    c_in, c_out = 2 * groups, 3 * groups
    x = rng.normal(size=(2,) + (size,) * nd + (c_in,)).astype(np.float32)
    w = rng.normal(size=(k,) * nd + (c_in // groups, c_out)).astype(np.float32)
    kw = dict(stride=stride, dilation=dilation, padding=padding, fill=fill, groups=groups)
    pairs = jq.padding_pairs(padding, (k,) * nd, stride=stride, dilation=dilation)

    y = jq.conv(x, w, **kw)
    xt, kt, yt = torch_conv(x, w, stride=stride, dilation=dilation, pairs=pairs, fill=fill,
                            groups=groups)
    assert_close(y, from_torch(yt))

    cot = rng.normal(size=y.shape).astype(np.float32)
    gx, gw = jax.grad(lambda a, b: jnp.sum(jq.conv(a, b, **kw) * cot), argnums=(0, 1))(x, w)
    yt.backward(to_torch(cot))
    assert_close(gx, from_torch(xt.grad))
    assert_close(gw, np.transpose(kt.grad.numpy(), tuple(range(2, 2 + nd)) + (1, 0)))


@pytest.mark.parametrize("fill", jq.FILLS)
@pytest.mark.parametrize("padding,k", [("same", 3), ("same", 5), ("full", 3), ("same", 4)])
def test_conv_matches_nn_conv2d_padding_mode(padding, k, fill):
    """nn.Conv2d with padding_mode: 'same' is its padding='same' (even kernels: extra pixel at
    the end), 'full' is padding=k-1."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 10, 11, 3)).astype(np.float32)
    torch_padding = "same" if padding == "same" else k - 1
    layer = torch.nn.Conv2d(3, 4, k, padding=torch_padding, padding_mode=fill, bias=True)
    w = np.transpose(layer.weight.detach().numpy(), (2, 3, 1, 0))
    b = layer.bias.detach().numpy()
    y = jq.conv(x, w, padding=padding, fill=fill, bias=b)
    assert_close(y, from_torch(layer(to_torch(x))))


@pytest.mark.parametrize("window,stride,pad", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (3, 3, 0),
                                               (2, 1, 0), (4, 2, 2)])
def test_max_pool_matches_torch(window, stride, pad):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 9, 10, 3)).astype(np.float32)
    pairs = ((pad, pad), (pad, pad))
    y, vjp = jax.vjp(lambda a: jq.max_pool(a, window, stride=stride, padding=pairs), x)
    xt = to_torch(x).requires_grad_(True)
    yt = F.max_pool2d(xt, window, stride=stride, padding=pad)
    assert_close(y, from_torch(yt))
    cot = rng.normal(size=y.shape).astype(np.float32)
    yt.backward(to_torch(cot))
    assert_close(vjp(cot)[0], from_torch(xt.grad))


def test_max_pool_same_is_torchvision_stem_pool():
    """torchvision's stem pool (3, stride 2, pad 1) is padding='same' with the neutral fill."""
    x = np.random.default_rng(4).normal(size=(1, 12, 12, 2)).astype(np.float32)
    y = jq.max_pool(x, 3, stride=2, padding="same")
    assert_close(y, from_torch(F.max_pool2d(to_torch(x), 3, stride=2, padding=1)))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("window,stride,pad", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (5, 2, 2)])
def test_avg_pool_matches_torch(window, stride, pad, count_include_pad):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 9, 10, 3)).astype(np.float32)
    pairs = ((pad, pad), (pad, pad))

    def ours(a):
        return jq.avg_pool(a, window, stride=stride, padding=pairs,
                           count_include_pad=count_include_pad)

    y, vjp = jax.vjp(ours, x)
    xt = to_torch(x).requires_grad_(True)
    yt = F.avg_pool2d(xt, window, stride=stride, padding=pad, count_include_pad=count_include_pad)
    assert_close(y, from_torch(yt))
    cot = rng.normal(size=y.shape).astype(np.float32)
    yt.backward(to_torch(cot))
    assert_close(vjp(cot)[0], from_torch(xt.grad))


@pytest.mark.parametrize("fill", jq.FILLS)
def test_pad_matches_torch_f_pad(fill):
    x = np.random.default_rng(6).normal(size=(2, 5, 6, 3)).astype(np.float32)
    pairs = ((1, 3), (2, 0))
    ref = F.pad(to_torch(x), torch_pads(pairs), mode=TORCH_PAD_MODE[fill])
    assert_close(jq.pad(x, pairs, fill), from_torch(ref), tol=1e-7)


@pytest.mark.parametrize("filter_size", [1, 2, 3, 4, 5, 7])
def test_blur_pool_is_zhang_blurpool(filter_size):
    """Zhang's BlurPool: reflect-pad ((f-1)//2, ceil((f-1)/2)), depthwise binomial filter,
    stride 2 — built here from torch ops and compared."""
    rng = np.random.default_rng(filter_size)
    x = rng.normal(size=(2, 11, 12, 3)).astype(np.float32)
    row = np.array([math.comb(filter_size - 1, i) for i in range(filter_size)])
    filt = np.outer(row, row)
    filt = (filt / filt.sum()).astype(np.float32)
    lo, hi = (filter_size - 1) // 2, filter_size - 1 - (filter_size - 1) // 2
    xt = F.pad(to_torch(x), [lo, hi, lo, hi], mode="reflect")
    kt = torch.from_numpy(np.broadcast_to(filt, (3, 1) + filt.shape).copy())
    ref = F.conv2d(xt, kt, stride=2, groups=3)
    assert_close(jq.blur_pool(x, filter_size=filter_size), from_torch(ref))
