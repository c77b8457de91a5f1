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
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from jaxeq import _checks, kernels
from jaxeq.conv import conv
from jaxeq.padding import FILLS, dim_fills, fill_groups, only_dims, pad, padding_pairs
from jaxeq.pool import MAX_POOL_FILLS, avg_pool, blur_pool, max_pool

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


def _add_bias(layer: nn.Module, y: Array, fan_in: int) -> Array:
    """``y`` plus the ``bias`` parameter of a Conv or Dense ``layer`` when it ``use_bias``
    (``bias_init=None``: PyTorch's default for this ``fan_in``)."""
    if not layer.use_bias:
        return y
    init = layer.bias_init or torch_bias_init(fan_in)
    bias = layer.param("bias", init, (layer.features,), layer.param_dtype)
    return y + _channels_last(jnp.asarray(bias, layer.dtype), y.ndim)


def _one_fill(x: Array, padding: Any, fill: Any, window: Any, stride: Any, dilation: Any,
              allowed: Sequence[str], pad_fn: Callable) -> tuple[Array, Any, str]:
    """(x, padding, fill) for a pure function that takes one fill for every dim.

    A ``fill`` given per spatial dim that differs between dims is applied here: the whole pad
    by ``pad_fn(x, pairs, fills)``, leaving a "valid" window to the function. One name, or
    equal names, pass through as that name.
    """
    if isinstance(fill, str):
        return x, padding, fill
    fills = dim_fills(fill, x.ndim - 2, allowed)
    if len(set(fills)) == 1:
        return x, padding, fills[0]
    pairs = padding_pairs(padding, window, stride=stride, dilation=dilation, ndim=x.ndim - 2)
    return pad_fn(x, pairs, fills), "valid", fills[-1]


def _pool_pad(x: Array, pairs: Any, fills: Sequence[str]) -> Array:
    """:func:`jaxeq.pad` that also takes the max-pool fill "neutral" (-inf)."""
    for f, dims in fill_groups(fills):
        part = only_dims(pairs, dims)
        x = pad(x, part, "zeros", value=-jnp.inf) if f == "neutral" else pad(x, part, f)
    return x


def _check_built_channels(conv: nn.Module, x: Array) -> None:
    """Refuse an input whose channel count is not the one the existing kernel was built for
    (typically an NCHW array given to a model built for NHWC), in one line instead of flax's
    parameter-shape error."""
    if not conv.has_variable("params", "kernel"):
        return  # init: the kernel is built for this input
    built = conv.get_variable("params", "kernel").shape[-2] * conv.groups
    if x.shape[-1] != built:
        name = conv.name or type(conv).__name__
        raise ValueError(f"x must have shape (N, *spatial, C) with C={built}, the channels "
                         f"'{name}' was built for; got shape {tuple(x.shape)} (an NCHW array? "
                         f"move the channel axis last)")


class Conv(nn.Module):
    """N-D convolution through :func:`jaxeq.conv` (explicit pad, then a VALID conv).

    ``padding`` is a mode, one mode per spatial dim, or explicit pairs; ``fill`` one name or
    one per spatial dim (e.g. a circular time axis beside zero-padded space).

    Parameters ``kernel`` ``(*kernel_size, C_in // groups, features)`` and, with ``use_bias``,
    ``bias``. ``bias_init=None`` uses PyTorch's default bias init for this fan-in.
    """
    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    dilation: int | Sequence[int] = 1
    padding: Any = "same"
    fill: str | Sequence[str] = "zeros"
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
        _check_built_channels(self, x)
        kernel = self.param("kernel", self.kernel_init, ks + (c_in // self.groups, self.features),
                            self.param_dtype)
        x, padding, fill = _one_fill(jnp.asarray(x, self.dtype), self.padding, self.fill, ks,
                                     self.strides, self.dilation, FILLS, pad)
        y = conv(x, jnp.asarray(kernel, self.dtype), stride=self.strides,
                 dilation=self.dilation, padding=padding, fill=fill, groups=self.groups)
        return _add_bias(self, y, math.prod(ks) * (c_in // self.groups))


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
        return _add_bias(self, y, fan_in)


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
        if train:
            xf = jnp.asarray(x, jnp.promote_types(self.dtype, jnp.float32))
            # A fast path (jaxeq.kernels) computes the same statistics and output with its own
            # gradient; it needs the whole batch in one array, so not with ``axis_name``.
            fast = kernels.select("batch_norm") if self.axis_name is None else None
            if fast is not None:
                y, mean, var = fast(xf, jnp.asarray(scale, stat_dtype),
                                    jnp.asarray(bias, stat_dtype), self.epsilon)
                if not self.is_initializing():
                    self._update_running(ra_mean, ra_var, lax.stop_gradient(mean),
                                         lax.stop_gradient(var), math.prod(x.shape[:-1]))
                return y.astype(self.dtype)
            mean, var, count = _batch_moments(xf, self.axis_name)
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


def _batch_moments(xf: Array, axis_name: str | None):
    """(mean, biased variance, count) of ``xf`` over all axes but the last, and over the mapped
    axis ``axis_name`` too unless it is None.

    One pass over x (a single fused reduction), shifted by one sample per channel:
    var = E[(x-k)^2] - E[x-k]^2 holds for any constant k, and k near the data keeps the
    subtraction from cancelling when |mean| >> std (plain E[x^2] - E[x]^2 does).
    """
    def across(v):
        return v if axis_name is None else lax.pmean(v, axis_name)

    axes = tuple(range(xf.ndim - 1))
    k = across(lax.stop_gradient(xf[(0,) * (xf.ndim - 1)]))
    xs = xf - _channels_last(k, xf.ndim)
    mean_s, mean_sq = across((jnp.mean(xs, axes), jnp.mean(jnp.square(xs), axes)))
    count = math.prod(xf.shape[:-1]) * (1 if axis_name is None else lax.psum(1, axis_name))
    return k + mean_s, jnp.maximum(mean_sq - jnp.square(mean_s), 0.0), count


class MaxPool(nn.Module):
    """:func:`jaxeq.max_pool` as a layer (no parameters); ``strides`` defaults to ``window``.

    ``fill`` is one name or one per spatial dim, as :class:`Conv`.
    """
    window: int | Sequence[int]
    strides: int | Sequence[int] | None = None
    padding: Any = "valid"
    fill: str | Sequence[str] = "neutral"

    def __call__(self, x: Array) -> Array:
        stride = self.window if self.strides is None else self.strides
        x, padding, fill = _one_fill(x, self.padding, self.fill, self.window, stride, 1,
                                     MAX_POOL_FILLS, _pool_pad)
        return max_pool(x, self.window, stride=self.strides, padding=padding, fill=fill)


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
