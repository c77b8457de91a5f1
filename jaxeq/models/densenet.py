"""DenseNet-121 with the padding switch (torchvision layout; 7,978,856 parameters).

Module names follow torchvision's ``features.*``: ``conv0``, ``norm0``, ``pool0``,
``denseblock{b}/denselayer{l}/{norm1,conv1,norm2,conv2}``, ``transition{b}/{norm,conv,pool}``,
``norm5``, and the classifier ``head``. With ``padding="full"`` each 3x3 conv grows the map by
2, so the features it is concatenated with are zero-padded by 1 per side (the DenseNet analogue
of F-Conv's padded shortcuts); with "valid" they are centre-cropped. The stem max-pool
(:func:`jaxeq.models.stem.stem_pool`) is torchvision's 3/2/1 for "same" and, as in the F-Conv
ResNet, kernel 2 stride 2 pad 0 otherwise.
Transitions keep torchvision's 2x2/2 average pool.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxeq import _checks
from jaxeq.models._common import GLOBAL_POOLS, Block, Model, ModuleDef, global_pool
from jaxeq.models.stem import DENSENET_STEM_KERNELS, stem_pool
from jaxeq.nn import AvgPool, MaxPool, he_normal_fan_in
from jaxeq.padding import crop_end_to, pad_or_crop_start, shortcut_pad


class _DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (``bn_size * growth_rate``) then BN-ReLU-3x3 conv (``growth_rate``)."""
    growth_rate: int
    bn_size: int
    conv: ModuleDef
    norm: ModuleDef

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = nn.relu(self.norm(name="norm1")(x, train))
        y = self.conv(self.bn_size * self.growth_rate, 1, name="conv1")(y)
        y = nn.relu(self.norm(name="norm2")(y, train))
        return self.conv(self.growth_rate, 3, name="conv2")(y)


class _DenseBlock(Block):
    """``num_layers`` dense layers, each concatenated to the features before it, which are
    padded or cropped to the new map as a shortcut is (the model's ``padding`` and ``fill``)."""
    num_layers: int
    growth_rate: int
    bn_size: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        align = shortcut_pad([(1, 1, self.padding), (3, 1, self.padding)])
        for i in range(self.num_layers):
            new = _DenseLayer(self.growth_rate, self.bn_size, self.conv, self.norm,
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
            _checks.int_at_least(name, getattr(self, name), 1)
        _checks.int_at_least("stem_pool_kernel", self.stem_pool_kernel, 1, allow_none=True)
        _checks.int_sequence("block_config", self.block_config, 1)

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers = self.block_layers(he_normal_fan_in)
        conv, norm = layers["conv"], layers["norm"]
        x = conv(self.num_init_features, 7, strides=2, name="conv0")(x)
        x = nn.relu(norm(name="norm0")(x, train))
        k, s, p, f = stem_pool(self.padding, self.fill, kernel=self.stem_pool_kernel,
                               kernels=DENSENET_STEM_KERNELS)
        x = MaxPool(k, strides=s, padding=p, fill=f, name="pool0")(x)
        for b, n in enumerate(self.block_config):
            x = _DenseBlock(num_layers=n, growth_rate=self.growth_rate, bn_size=self.bn_size,
                            name=f"denseblock{b + 1}", **layers)(x, train)
            if b + 1 < len(self.block_config):
                x = _Transition(x.shape[-1] // 2, conv, norm,
                                name=f"transition{b + 1}")(x, train)
        x = nn.relu(norm(name="norm5")(x, train))
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
    """BN-ReLU-1x1 conv to ``features`` channels, then torchvision's 2x2/2 average pool."""
    features: int
    conv: ModuleDef
    norm: ModuleDef

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(self.norm(name="norm")(x, train))
        x = self.conv(self.features, 1, name="conv")(x)
        return AvgPool(2, strides=2, padding="valid", name="pool")(x)


def densenet121(**kwargs) -> DenseNet:
    return DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, **kwargs)
