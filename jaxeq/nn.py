"""Flax linen layers that own parameters and call the pure functions of jaxeq.

Every layer takes the paper's ``padding`` ("valid", "same", "full" or explicit pairs) and
``fill`` ("zeros", "circular", "reflect", "replicate"); the pad arithmetic lives in
:mod:`jaxeq.padding`, never here. Layout NHWC, kernels ``(*k, C_in / groups, C_out)``.

Initialisers and BatchNorm follow PyTorch, so a model trained here starts from the same
distribution as the official PyTorch code and torch checkpoints load without translation
of semantics (see :mod:`jaxeq.weights`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from jaxeq import _checks
from jaxeq.conv import conv
from jaxeq.padding import PADDINGS, pad, padding_pairs
from jaxeq.pool import avg_pool, blur_pool, max_pool

Array = Any
Initializer = Callable[..., Array]

# PyTorch's default for Conv*d and Linear weights: kaiming_uniform(a=sqrt(5)), i.e.
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_default_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
# torchvision ResNet / VGG / BagNet convs: kaiming_normal(mode="fan_out", relu).
he_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
# torchvision DenseNet convs: kaiming_normal (mode="fan_in", relu).
he_normal_fan_in = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def torch_bias_init(fan_in: int) -> Initializer:
    """PyTorch's default bias init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _channels_last(v: Array, ndim: int) -> Array:
    """A per-channel vector shaped to broadcast against an (N, ..., C) array of rank ``ndim``."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _size_tuple(name: str, value: Any, ndim: int) -> tuple[int, ...]:
    return _checks.positive_ints(name, value, ndim)


class Conv(nn.Module):
    """N-D convolution through :func:`jaxeq.conv` (explicit pad, then a VALID conv).

    Parameters ``kernel`` ``(*kernel_size, C_in // groups, features)`` and, with ``use_bias``,
    ``bias``. ``bias_init=None`` uses PyTorch's default bias init for this fan-in.
    """
    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    dilation: int | Sequence[int] = 1
    padding: Any = "same"
    fill: str = "zeros"
    groups: int = 1
    use_bias: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Initializer = torch_default_init
    bias_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        ndim = _checks.spatial_rank("x", x)
        ks = _size_tuple("kernel_size", self.kernel_size, ndim)
        c_in = x.shape[-1]
        if c_in % self.groups:
            raise ValueError(f"groups={self.groups} must divide the input channels ({c_in})")
        kernel = self.param("kernel", self.kernel_init, ks + (c_in // self.groups, self.features),
                            self.param_dtype)
        y = conv(jnp.asarray(x, self.dtype), jnp.asarray(kernel, self.dtype),
                 stride=self.strides, dilation=self.dilation, padding=self.padding,
                 fill=self.fill, groups=self.groups)
        if self.use_bias:
            fan_in = math.prod(ks) * (c_in // self.groups)
            init = self.bias_init or torch_bias_init(fan_in)
            bias = self.param("bias", init, (self.features,), self.param_dtype)
            y = y + _channels_last(jnp.asarray(bias, self.dtype), y.ndim)
        return y


class Dense(nn.Module):
    """Linear layer with PyTorch's default init; parameters ``kernel`` (in, out) and ``bias``."""
    features: int
    use_bias: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Initializer = torch_default_init
    bias_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (fan_in, self.features), self.param_dtype)
        y = jnp.dot(jnp.asarray(x, self.dtype), jnp.asarray(kernel, self.dtype))
        if self.use_bias:
            init = self.bias_init or torch_bias_init(fan_in)
            bias = self.param("bias", init, (self.features,), self.param_dtype)
            y = y + _channels_last(jnp.asarray(bias, self.dtype), y.ndim)
        return y


class BatchNorm(nn.Module):
    """Batch normalisation over all axes but the last, with PyTorch's semantics.

    ``momentum`` uses flax's convention (decay of the running average): 0.9 here is PyTorch's
    ``momentum=0.1``. Training normalises with the biased batch variance and updates the running
    variance with the unbiased one, as PyTorch does, so running statistics match torch's.
    Statistics (and ``batch_stats``) are kept in float32, or float64 when either ``dtype`` or
    ``param_dtype`` is float64 (never demoted); the output is in ``dtype``.
    Parameters ``scale``, ``bias``; ``batch_stats`` ``mean``, ``var``. ``axis_name`` averages the
    statistics over a mapped axis (pmap/shard_map); with jit sharding leave it None.
    """
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    axis_name: str | None = None
    scale_init: Initializer = nn.initializers.ones
    bias_init: Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        c = x.shape[-1]
        scale = self.param("scale", self.scale_init, (c,), self.param_dtype)
        bias = self.param("bias", self.bias_init, (c,), self.param_dtype)
        # float32, or float64 if the compute or the parameters are float64
        stat_dtype = jnp.promote_types(jnp.promote_types(self.param_dtype, self.dtype),
                                       jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), stat_dtype))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), stat_dtype))
        if train and self.axis_name is None:
            xf = jnp.asarray(x, jnp.promote_types(self.dtype, jnp.float32))
            y, mean, var = _bn_train(xf, jnp.asarray(scale, stat_dtype),
                                     jnp.asarray(bias, stat_dtype), self.epsilon)
            if not self.is_initializing():
                self._update_running(ra_mean, ra_var, lax.stop_gradient(mean),
                                     lax.stop_gradient(var), math.prod(x.shape[:-1]))
            return y.astype(self.dtype)
        if train:
            axes = tuple(range(x.ndim - 1))
            xf = jnp.asarray(x, jnp.promote_types(self.dtype, jnp.float32))
            # One pass over x (a single fused reduction), shifted by one sample per channel:
            # var = E[(x-k)^2] - E[x-k]^2 holds for any constant k, and k near the data keeps
            # the subtraction from cancelling when |mean| >> std (plain E[x^2] - E[x]^2 does).
            k = lax.pmean(lax.stop_gradient(xf[(0,) * (x.ndim - 1)]), self.axis_name)
            xs = xf - _channels_last(k, x.ndim)
            mean_s, mean_sq = lax.pmean((jnp.mean(xs, axes), jnp.mean(jnp.square(xs), axes)),
                                        self.axis_name)
            count = math.prod(x.shape[:-1]) * lax.psum(1, self.axis_name)
            mean = k + mean_s
            var = jnp.maximum(mean_sq - jnp.square(mean_s), 0.0)
            if not self.is_initializing():
                self._update_running(ra_mean, ra_var, mean, var, count)
        else:
            mean, var = ra_mean.value, ra_var.value
        # Fold the normalisation into one multiply-add per element.
        mul = jnp.asarray(scale, stat_dtype) * lax.rsqrt(var + self.epsilon)
        shift = jnp.asarray(bias, stat_dtype) - mean * mul
        mul = _channels_last(mul.astype(self.dtype), x.ndim)
        shift = _channels_last(shift.astype(self.dtype), x.ndim)
        return jnp.asarray(x, self.dtype) * mul + shift

    def _update_running(self, ra_mean, ra_var, mean, var, count) -> None:
        """PyTorch's running statistics: biased mean, unbiased variance."""
        m = self.momentum
        unbiased = var * (count / jnp.maximum(count - 1, 1))
        dt = ra_mean.value.dtype  # the running statistics keep their dtype across steps
        ra_mean.value = (m * ra_mean.value + (1.0 - m) * mean).astype(dt)
        ra_var.value = (m * ra_var.value + (1.0 - m) * unbiased).astype(dt)


# ----------------------------------------------------------------------------------------------
# Train-mode BatchNorm with a hand-written backward pass.
#
# Same maths as autodiff of the statistics above, arranged for XLA:CPU: the forward needs one
# pass for the two sums and one multiply-add; the backward one pass for two sums and one
# elementwise expression. Reductions run as partial sums over row blocks (``_channel_sum``),
# which XLA:CPU executes faster than one long column reduction over N*H*W rows.

_SUM_BLOCKS = 16


def _channel_sum(a: Array) -> Array:
    """Sum of an (M, C) array over its rows, shape (1, C), as ``_SUM_BLOCKS`` partial sums."""
    m, c = a.shape
    p = _SUM_BLOCKS
    while m % p:
        p //= 2
    return jnp.sum(jnp.sum(a.reshape(p, m // p, c), 1), 0, keepdims=True)


def _bn_stats(x2: Array):
    """(k, mean, var), each (1, C), of (M, C) ``x2``; one pass, shifted by the first row ``k``
    (var = E[(x-k)^2] - E[x-k]^2 for any constant k; k near the data avoids cancellation)."""
    m = x2.shape[0]
    k = lax.stop_gradient(x2[:1])
    xs = x2 - k
    mean_s = _channel_sum(xs) / m
    mean_sq = _channel_sum(xs * xs) / m
    return k, k + mean_s, jnp.maximum(mean_sq - mean_s * mean_s, 0.0)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _bn_train(x: Array, scale: Array, bias: Array, eps: float):
    """(normalised and scaled x, batch mean, biased batch variance) over all axes but the last."""
    return _bn_train_fwd(x, scale, bias, eps)[0]


def _bn_train_fwd(x, scale, bias, eps):
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    k, mean, var = _bn_stats(x2)
    rstd = lax.rsqrt(var + eps)
    mul = scale.reshape(1, c) * rstd
    y = (x2 * mul + (bias.reshape(1, c) - mean * mul)).reshape(x.shape)
    return (y, mean.reshape(c), var.reshape(c)), (x, k, mean, rstd, scale)


def _bn_train_bwd(eps, res, g):
    x, k, mean, rstd, scale = res
    gy, gmean, gvar = g
    c = x.shape[-1]
    x2, dy = x.reshape(-1, c), gy.reshape(-1, c)
    m = x2.shape[0]
    s_dy = _channel_sum(dy)
    # sum(dy * (x - mean)) from the shifted sum: sum(dy (x - k)) - (mean - k) sum(dy).
    s_dyxc = _channel_sum(dy * (x2 - k)) - (mean - k) * s_dy
    mul = scale.reshape(1, c) * rstd
    gmean, gvar = gmean.reshape(1, c), gvar.reshape(1, c)
    # d/dx of y = (x - mean) * mul + bias, through mean and var too; plus the (normally zero)
    # cotangents of the returned mean and variance.
    coef = mul * rstd * rstd * s_dyxc / m - 2.0 * gvar / m
    dx = mul * dy - coef * (x2 - mean) + (gmean - mul * s_dy) / m
    return dx.reshape(x.shape), (s_dyxc * rstd).reshape(c), s_dy.reshape(c)


_bn_train.defvjp(_bn_train_fwd, _bn_train_bwd)


class MaxPool(nn.Module):
    """:func:`jaxeq.max_pool` as a layer (no parameters); ``strides`` defaults to ``window``.

    """
    window: int | Sequence[int]
    strides: int | Sequence[int] | None = None
    padding: Any = "valid"
    fill: str = "neutral"

    def __call__(self, x: Array) -> Array:
        return max_pool(x, self.window, stride=self.strides, padding=self.padding,
                        fill=self.fill)


class AvgPool(nn.Module):
    """:func:`jaxeq.avg_pool` as a layer (no parameters); ``strides`` defaults to ``window``."""
    window: int | Sequence[int]
    strides: int | Sequence[int] | None = None
    padding: Any = "valid"
    fill: str = "zeros"
    count_include_pad: bool = True

    def __call__(self, x: Array) -> Array:
        return avg_pool(x, self.window, stride=self.strides, padding=self.padding,
                        fill=self.fill, count_include_pad=self.count_include_pad)


class BlurPool(nn.Module):
    """:func:`jaxeq.blur_pool` (binomial blur then subsample, Zhang 2019) as a layer."""
    filter_size: int = 3
    strides: int | Sequence[int] = 2
    padding: Any = "same"
    fill: str = "reflect"

    def __call__(self, x: Array) -> Array:
        return blur_pool(x, filter_size=self.filter_size, stride=self.strides,
                         padding=self.padding, fill=self.fill)


def adaptive_avg_pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) averaging matrix of PyTorch's adaptive average pooling along one dim:
    bin i averages ``[floor(i n_in / n_out), ceil((i + 1) n_in / n_out))``."""
    m = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        lo = (i * n_in) // n_out
        hi = -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


class AdaptiveAvgPool(nn.Module):
    """PyTorch's ``AdaptiveAvgPool2d(output_size)`` for NHWC maps (a no-op at that size)."""
    output_size: int | Sequence[int]

    def __call__(self, x: Array) -> Array:
        ndim = _checks.spatial_rank("x", x)
        outs = _size_tuple("output_size", self.output_size, ndim)
        for d, n_out in enumerate(outs):
            n_in = x.shape[d + 1]
            if n_in == n_out:
                continue
            mat = jnp.asarray(adaptive_avg_pool_matrix(n_in, n_out), x.dtype)
            x = jnp.moveaxis(jnp.tensordot(mat, x, axes=((1,), (d + 1,))), 0, d + 1)
        return x


# ----------------------------------------------------------------------------------------------
# Residual alignment: where the branch output sits relative to its input.

def window_offset(layers: Sequence[tuple[int, int, Any]]) -> float:
    """Input position of the centre of the window behind output pixel 0, for a chain of
    windowed layers given as ``(kernel_size, stride, padding)`` (one spatial dim).

    Output pixel ``j`` of the chain looks at input position ``S j + offset`` with ``S`` the
    product of the strides: "same" layers add 0, "full" layers move the window out by
    ``(k - 1) / 2`` (times the stride before them), "valid" layers move it in.
    """
    offset, cum = 0.0, 1
    for k, s, padding in layers:
        (lo, _), = padding_pairs(padding, (k,), stride=(s,))
        offset += cum * ((k - 1) / 2 - lo)
        cum *= s
    return offset


def shortcut_pad(main: Sequence[tuple[int, int, Any]],
                 shortcut: Sequence[tuple[int, int, Any]] = ()) -> int:
    """Pixels to pad (> 0) or crop (< 0) on the leading side of a block input before its
    shortcut path so that the shortcut's output pixels line up with the main branch's.

    F-Conv ResNet (SPEC.md): 2 for a BasicBlock identity, 3 before a stride-2 BasicBlock
    downsample, 1 for Bottlenecks. Same-padded blocks get 0.
    """
    diff = window_offset(shortcut) - window_offset(main)
    if diff != int(diff):
        raise ValueError(f"the shortcut cannot be aligned by whole pixels (offset {diff})")
    return int(diff)


def pad_or_crop_start(x: Array, amount: int, fill: str = "zeros") -> Array:
    """Pad ``amount`` pixels on both sides of every spatial dim (amount > 0), or crop
    ``-amount`` from the start (amount < 0); the end is fixed later by :func:`crop_end_to`."""
    ndim = _checks.spatial_rank("x", x)
    if amount > 0:
        return pad(x, ((amount, amount),) * ndim, fill)
    if amount < 0:
        return x[(slice(None),) + (slice(-amount, None),) * ndim]
    return x


def crop_end_to(x: Array, sizes: Sequence[int]) -> Array:
    """Keep the leading ``sizes`` pixels of each spatial dim (BagNet's bottom-right crop)."""
    ndim = _checks.spatial_rank("x", x)
    have = x.shape[1:-1]
    if any(h < s for h, s in zip(have, sizes)):
        raise ValueError(f"cannot crop a map of spatial size {have} to the larger {tuple(sizes)}")
    if tuple(have) == tuple(sizes):
        return x
    return x[(slice(None),) + tuple(slice(0, s) for s in sizes[:ndim])]


def check_padding(padding: Any) -> None:
    """Model-level check: ``padding`` must be a mode name (models never take raw pairs)."""
    _checks.choice("padding", padding, PADDINGS)
