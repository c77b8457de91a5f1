"""The toy nets of SPEC.md: Rook (E0) and Red-Green (E2).

Both are bias-free convs with ReLU, a global max pool and a linear head, initialised as
PyTorch's defaults (as the official code). The padding switch picks the paper's variant.
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn

from jaxeq import _checks
from jaxeq.models._common import GLOBAL_POOLS, Model, global_pool
from jaxeq.nn import Conv


class ConvNet(Model):
    """Plain conv stack ``conv{i}`` (no bias) -> ReLU -> global pool -> ``head``."""
    features: Sequence[int] = (32, 32, 64, 64)
    strides: Sequence[int] = (1, 2, 2, 2)
    kernel_size: int = 3
    global_pool: str = "max"

    def check(self) -> None:
        super().check()
        _checks.choice("global_pool", self.global_pool, GLOBAL_POOLS)
        _checks.int_at_least("kernel_size", self.kernel_size, 1)
        if len(self.features) != len(self.strides):
            raise ValueError(f"features and strides must be of equal length, got "
                             f"{self.features!r} and {self.strides!r}")
        _checks.int_sequence("features", self.features, 1)
        _checks.int_sequence("strides", self.strides, 1)

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train  # no BatchNorm or dropout
        for i, (c, s) in enumerate(zip(self.features, self.strides)):
            x = Conv(c, self.kernel_size, strides=s, padding=self.padding, fill=self.fill,
                     dtype=self.dtype, param_dtype=self.param_dtype, name=f"conv{i + 1}")(x)
            x = nn.relu(x)
        return self.logits(global_pool(x, self.global_pool))

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        out, cum = {}, 1
        for i, s in enumerate(self.strides):
            cum *= s
            out[f"conv{i + 1}"] = (cum, cum)
        return out


def rook_net(**kwargs) -> ConvNet:
    """E0: one 5x5 conv with 1 filter, same zeros, no bias -> ReLU -> global max -> linear(1->2)."""
    kwargs.setdefault("num_classes", 2)
    return ConvNet(features=(1,), strides=(1,), kernel_size=5, **kwargs)


def red_green_net(**kwargs) -> ConvNet:
    """E2: 3x3 convs 3->32 s1, 32->32 s2, 32->64 s2, 64->64 s2 (no bias, ReLU) -> global max
    -> linear(64->2)."""
    kwargs.setdefault("num_classes", 2)
    return ConvNet(features=(32, 32, 64, 64), strides=(1, 2, 2, 2), kernel_size=3, **kwargs)
