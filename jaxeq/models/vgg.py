"""VGG-16 (torchvision layout, no BatchNorm) with the padding switch.

"same" is torchvision's (every 3x3 pads 1); "full" pads every 3x3 by 2 (SPEC.md); the 2x2/2
max-pools stay unpadded. The classifier is torchvision's: adaptive average pool to 7x7,
flatten in PyTorch's (C, H, W) order (so checkpoints load unchanged), ``fc1`` and ``fc2``
(4096, ReLU, dropout) and ``head``. Dropout is active with ``train=True`` and then needs
``rngs={"dropout": key}``; ``dropout_rate=0`` removes it. Module names: ``conv{b}_{i}``,
``pool{b}``, ``avgpool``, ``fc1``, ``fc2``, ``head``.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxeq import _checks
from jaxeq.models._common import Model
from jaxeq.nn import AdaptiveAvgPool, Conv, Dense, MaxPool, he_normal_fan_out

# Channels per conv, "M" for a max-pool (torchvision's configuration "D").
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M")


def layer_names(cfg=VGG16_CFG) -> list[str]:
    """flax module name of every entry of ``cfg`` (the index is torchvision's
    ``features.{index}`` of that conv or pool, with a ReLU after each conv)."""
    names, block, i = [], 1, 1
    for v in cfg:
        if v == "M":
            names.append(f"pool{block}")
            block, i = block + 1, 1
        else:
            names.append(f"conv{block}_{i}")
            i += 1
    return names


def torch_feature_indices(cfg=VGG16_CFG) -> dict[str, int]:
    """flax name -> index in torchvision's ``features`` Sequential."""
    out, idx = {}, 0
    for name, v in zip(layer_names(cfg), cfg):
        out[name] = idx
        idx += 1 if v == "M" else 2
    return out


_NORMAL_001 = nn.initializers.normal(0.01)


class VGG(Model):
    cfg: tuple = VGG16_CFG
    classifier_width: int = 4096
    dropout_rate: float = 0.5
    pool_size: int = 7

    def check(self) -> None:
        super().check()
        _checks.int_at_least("classifier_width", self.classifier_width, 1)
        _checks.int_at_least("pool_size", self.pool_size, 1)
        if not 0.0 <= float(self.dropout_rate) < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")

    @nn.compact
    def __call__(self, x, train: bool = False):
        for name, v in zip(layer_names(self.cfg), self.cfg):
            if v == "M":
                x = MaxPool(2, strides=2, padding="valid", name=name)(x)
            else:
                x = Conv(v, 3, padding=self.padding, fill=self.fill, use_bias=True,
                         dtype=self.dtype, param_dtype=self.param_dtype,
                         kernel_init=he_normal_fan_out, bias_init=nn.initializers.zeros,
                         name=name)(x)
                x = nn.relu(x)
        x = AdaptiveAvgPool(self.pool_size, name="avgpool")(x)
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # torch's flatten order
        for name in ("fc1", "fc2"):
            x = Dense(self.classifier_width, dtype=self.dtype, param_dtype=self.param_dtype,
                      kernel_init=_NORMAL_001, bias_init=nn.initializers.zeros, name=name)(x)
            x = nn.relu(x)
            if self.dropout_rate > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return self.logits(x)

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        out, cum = {}, 1
        for name, v in zip(layer_names(self.cfg), self.cfg):
            if v == "M":
                cum *= 2
            out[name] = (cum, cum)
        return out


def vgg16(**kwargs) -> VGG:
    return VGG(cfg=VGG16_CFG, **kwargs)
