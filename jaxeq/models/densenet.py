"""DenseNet-121 with the padding switch (torchvision layout; 7,978,856 parameters).

Module names follow torchvision's ``features.*``: ``conv0``, ``norm0``, ``pool0``,
``denseblock{b}/denselayer{l}/{norm1,conv1,norm2,conv2}``, ``transition{b}/{norm,conv,pool}``,
``norm5``, and the classifier ``head``. With ``padding="full"`` each 3x3 conv grows the map by
2, so the features it is concatenated with are zero-padded by 1 per side (the DenseNet analogue
of F-Conv's padded shortcuts); with "valid" they are centre-cropped. The stem max-pool is
torchvision's 3/2/1 for "same" and, as in the F-Conv ResNet, kernel 2 stride 2 pad 0 otherwise.
Transitions keep torchvision's 2x2/2 average pool.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxeq.models._common import GLOBAL_POOLS, Model, check_positive_int, global_pool
from jaxeq import _checks
from jaxeq.nn import (AvgPool, BatchNorm, Conv, MaxPool, crop_end_to, he_normal_fan_in,
                      pad_or_crop_start, shortcut_pad)


class _DenseLayer(nn.Module):
    growth_rate: int
    bn_size: int
    padding: str
    fill: str
    dtype: Any
    param_dtype: Any
    bn_axis_name: str | None

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv_kw = dict(padding=self.padding, fill=self.fill, dtype=self.dtype,
                       param_dtype=self.param_dtype, kernel_init=he_normal_fan_in)
        bn_kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, axis_name=self.bn_axis_name)
        y = nn.relu(BatchNorm(name="norm1", **bn_kw)(x, train))
        y = Conv(self.bn_size * self.growth_rate, 1, name="conv1", **conv_kw)(y)
        y = nn.relu(BatchNorm(name="norm2", **bn_kw)(y, train))
        return Conv(self.growth_rate, 3, name="conv2", **conv_kw)(y)


class _DenseBlock(nn.Module):
    num_layers: int
    growth_rate: int
    bn_size: int
    padding: str
    fill: str
    dtype: Any
    param_dtype: Any
    bn_axis_name: str | None

    @nn.compact
    def __call__(self, x, train: bool = False):
        align = shortcut_pad([(1, 1, self.padding), (3, 1, self.padding)])
        for i in range(self.num_layers):
            new = _DenseLayer(self.growth_rate, self.bn_size, self.padding, self.fill, self.dtype,
                              self.param_dtype, self.bn_axis_name,
                              name=f"denselayer{i + 1}")(x, train)
            old = crop_end_to(pad_or_crop_start(x, align, self.fill), new.shape[1:-1])
            x = jnp.concatenate([old, new.astype(old.dtype)], axis=-1)
        return x


class DenseNet(Model):
    """DenseNet-BC (torchvision's DenseNet-121 by default); ``global_pool`` "avg" as torchvision."""
    growth_rate: int = 32
    block_config: tuple[int, ...] = (6, 12, 24, 16)
    num_init_features: int = 64
    bn_size: int = 4
    global_pool: str = "avg"
    stem_pool_kernel: int | None = None

    def check(self) -> None:
        super().check()
        _checks.choice("global_pool", self.global_pool, GLOBAL_POOLS)
        for name in ("growth_rate", "num_init_features", "bn_size"):
            check_positive_int(name, getattr(self, name))
        if self.stem_pool_kernel is not None:
            check_positive_int("stem_pool_kernel", self.stem_pool_kernel)
        if not self.block_config:
            raise ValueError("block_config must be a non-empty sequence of ints >= 1")
        for n in self.block_config:
            check_positive_int("block_config", n)

    def _stem_pool(self):
        if self.padding == "same":
            return self.stem_pool_kernel or 3, "same"
        return self.stem_pool_kernel or 2, "valid"

    @nn.compact
    def __call__(self, x, train: bool = False):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        bn_kw = dict(axis_name=self.bn_axis_name, **kw)
        x = Conv(self.num_init_features, 7, strides=2, padding=self.padding, fill=self.fill,
                 kernel_init=he_normal_fan_in, name="conv0", **kw)(x)
        x = nn.relu(BatchNorm(name="norm0", **bn_kw)(x, train))
        k, p = self._stem_pool()
        x = MaxPool(k, strides=2, padding=p,
                    fill="neutral" if self.fill == "zeros" else self.fill, name="pool0")(x)
        for b, n in enumerate(self.block_config):
            x = _DenseBlock(n, self.growth_rate, self.bn_size, self.padding, self.fill,
                            self.dtype, self.param_dtype, self.bn_axis_name,
                            name=f"denseblock{b + 1}")(x, train)
            if b + 1 < len(self.block_config):
                x = _Transition(x.shape[-1] // 2, self.padding, self.fill, self.dtype,
                                self.param_dtype, self.bn_axis_name,
                                name=f"transition{b + 1}")(x, train)
        x = nn.relu(BatchNorm(name="norm5", **bn_kw)(x, train))
        return self.logits(global_pool(x, self.global_pool))

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        out = {"conv0": 2, "norm0": 2, "pool0": 4}
        cum = 4
        for b, n in enumerate(self.block_config):
            block = f"denseblock{b + 1}"
            out[block] = cum
            for i in range(n):
                for sub in ("", "/norm1", "/conv1", "/norm2", "/conv2"):
                    out[f"{block}/denselayer{i + 1}{sub}"] = cum
            if b + 1 < len(self.block_config):
                t = f"transition{b + 1}"
                out[f"{t}/norm"] = out[f"{t}/conv"] = cum
                cum *= 2
                out[f"{t}/pool"] = out[t] = cum
        out["norm5"] = cum
        return {k: (v, v) for k, v in out.items()}


class _Transition(nn.Module):
    features: int
    padding: str
    fill: str
    dtype: Any
    param_dtype: Any
    bn_axis_name: str | None

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(BatchNorm(dtype=self.dtype, param_dtype=self.param_dtype,
                              axis_name=self.bn_axis_name, name="norm")(x, train))
        x = Conv(self.features, 1, padding=self.padding, fill=self.fill, dtype=self.dtype,
                 param_dtype=self.param_dtype, kernel_init=he_normal_fan_in, name="conv")(x)
        return AvgPool(2, strides=2, padding="valid", name="pool")(x)


def densenet121(**kwargs) -> DenseNet:
    return DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, **kwargs)
