"""BagNet-9/17/33 (Brendel & Bethge, ICLR 2019): ResNet-50-like nets with small receptive fields.

Layout of the authors' PyTorch code (``bagnets/pytorchnet.py``), so their checkpoints load:
stem ``conv1`` 1x1 (3->64) and ``conv2`` 3x3 (64->64), ``bn1`` (PyTorch momentum 0.001), then
four Bottleneck stages (3, 4, 6, 3 blocks; strides 2, 2, 2, 1) whose 3x3 convs are replaced by
1x1 convs beyond the first ``kernel3[i]`` blocks of stage i; the first block of a stage strides
in its 3x3 (or 1x1) conv. Receptive fields 9, 17, 33 px.

``padding="valid"`` (default) is BagNet's: the shortcut is cropped at the bottom-right to the
branch size (as the original code; note this leaves it off-centre). "same" and "full" switch
every conv; shortcuts are then aligned as in the F-Conv ResNet (zero-padded, centred).
Module names: ``conv1``, ``conv2``, ``bn1``, ``layer{1..4}_{j}/{conv1..3,bn1..3,
downsample_conv,downsample_bn}``, ``head``.
"""
from __future__ import annotations

import flax.linen as nn

from jaxeq import _checks
from jaxeq.models._common import GLOBAL_POOLS, Block, Model, global_pool
from jaxeq.nn import he_normal_fan_out
from jaxeq.padding import crop_end_to, pad_or_crop_start, shortcut_pad


class _Bottleneck(Block):
    """BagNet's Bottleneck: 1x1, ``kernel_size`` (strided), 1x1 (x4 channels) convs; the
    shortcut cropped at the bottom-right ("valid") or aligned as the F-Conv ResNet's."""
    planes: int
    strides: int
    kernel_size: int
    downsample: bool

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = nn.relu(self.norm(name="bn1")(self.conv(self.planes, 1, name="conv1")(x), train))
        y = nn.relu(self.norm(name="bn2")(
            self.conv(self.planes, self.kernel_size, strides=self.strides, name="conv2")(y),
            train))
        y = self.norm(name="bn3")(self.conv(self.planes * 4, 1, name="conv3")(y), train)
        r = x
        if self.padding != "valid":
            main = [(1, 1, self.padding), (self.kernel_size, self.strides, self.padding),
                    (1, 1, self.padding)]
            short = [(1, self.strides, self.padding)] if self.downsample else []
            r = pad_or_crop_start(r, shortcut_pad(main, short), self.fill)
        if self.downsample:
            r = self.conv(self.planes * 4, 1, strides=self.strides, name="downsample_conv")(r)
            r = self.norm(name="downsample_bn")(r, train)
        return nn.relu(y + crop_end_to(r, y.shape[1:-1]))


class BagNet(Model):
    kernel3: tuple[int, ...] = (1, 1, 1, 1)
    stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
    stage_strides: tuple[int, ...] = (2, 2, 2, 1)
    padding: str = "valid"
    global_pool: str = "avg"

    def check(self) -> None:
        super().check()
        _checks.choice("global_pool", self.global_pool, GLOBAL_POOLS)
        if not (len(self.kernel3) == len(self.stage_sizes) == len(self.stage_strides) > 0):
            raise ValueError("kernel3, stage_sizes and stage_strides must have equal, non-zero "
                             f"lengths, got {self.kernel3!r}, {self.stage_sizes!r}, "
                             f"{self.stage_strides!r}")
        _checks.int_sequence("stage_sizes", self.stage_sizes, 1)
        _checks.int_sequence("stage_strides", self.stage_strides, 1)
        _checks.int_sequence("kernel3", self.kernel3, 0)

    def _blocks(self):
        out, inplanes = [], 64
        for i, (n, stride, k3) in enumerate(zip(self.stage_sizes, self.stage_strides,
                                                self.kernel3)):
            planes = 64 * 2 ** i
            for j in range(n):
                s = stride if j == 0 else 1
                down = j == 0 and (s != 1 or inplanes != planes * 4)
                out.append((f"layer{i + 1}_{j}", dict(planes=planes, strides=s,
                                                     kernel_size=3 if j < k3 else 1,
                                                     downsample=down)))
                inplanes = planes * 4
        return out

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers = self.block_layers(he_normal_fan_out)
        x = layers["conv"](64, 1, name="conv1")(x)
        x = layers["conv"](64, 3, name="conv2")(x)
        x = nn.relu(layers["norm"](momentum=0.999, name="bn1")(x, train))
        for name, cfg in self._blocks():
            x = _Bottleneck(name=name, **layers, **cfg)(x, train)
        return self.logits(global_pool(x, self.global_pool))

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        out = {"conv1": 1, "conv2": 1, "bn1": 1}
        cum = 1
        for name, cfg in self._blocks():
            s = cfg["strides"]
            out[f"{name}/conv1"] = out[f"{name}/bn1"] = cum
            for sub in ("conv2", "bn2", "conv3", "bn3"):
                out[f"{name}/{sub}"] = cum * s
            if cfg["downsample"]:
                out[f"{name}/downsample_conv"] = out[f"{name}/downsample_bn"] = cum * s
            cum *= s
            out[name] = cum
        return {k: (v, v) for k, v in out.items()}


def bagnet9(**kwargs) -> BagNet:
    return BagNet(kernel3=(1, 1, 0, 0), **kwargs)


def bagnet17(**kwargs) -> BagNet:
    return BagNet(kernel3=(1, 1, 1, 0), **kwargs)


def bagnet33(**kwargs) -> BagNet:
    return BagNet(kernel3=(1, 1, 1, 1), **kwargs)
