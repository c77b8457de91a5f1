"""ResNet-18/34/50/101 with the paper's padding switch (and BlurPool variants).

``padding="same"`` is layer for layer torchvision's ResNet (v1.5: a Bottleneck strides in its
3x3 conv), so torchvision checkpoints load unchanged. ``padding="full"`` is SPEC.md's
"F-Conv ResNet, exactly": every kxk conv pads k-1 (stem 7x7/2 pads 6, 3x3 pads 2), the stem
max-pool is kernel 2 stride 2 pad 0, and residuals are aligned by zero-padding the shortcut
(never by cropping): a BasicBlock identity is padded by 2 per side, its stride-2 downsample
input by 3; Bottleneck identity and downsample inputs by 1. Final maps at 224: 21x21 for
RN18 and RN50. ``padding="valid"`` crops the shortcut instead (centred), for completeness.

``pool="blur"`` (SPEC E3, Zhang 2019 "Making convolutional networks shift-invariant again"):
the stem max-pool becomes max-pool kernel 2 stride 1 then BlurPool stride 2; every strided
conv inside a block becomes the same conv at stride 1, its BN and ReLU, then BlurPool stride 2
(Zhang's ConvBlurPool); a strided downsample becomes BlurPool stride 2 then the 1x1 conv at
stride 1. The stem 7x7 conv keeps its stride, as in Zhang's code. As in Zhang's code, block
widths are torchvision's (conv1 in->planes), so torchvision weights load into the blur
variants too (Zhang's own ``*_lpf`` checkpoints name the strided convs differently and need
their keys renamed). The blur is padded as the model: "same" with reflect fill for
same-zero models (Zhang's default; ``blur_fill`` overrides), "full" with the model's fill
(zeros: SPEC's F+BlurPool, padded by f-1).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn

from jaxeq import _checks
from jaxeq.models._common import GLOBAL_POOLS, Model, check_positive_int, global_pool
from jaxeq.nn import (BatchNorm, BlurPool, Conv, MaxPool, crop_end_to, he_normal_fan_out,
                      pad_or_crop_start, shortcut_pad)
from jaxeq.padding import FILLS

POOLS = ("max", "blur")
BLOCKS = ("basic", "bottleneck")
STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class _Block(nn.Module):
    """BasicBlock or Bottleneck; ``downsample`` adds the 1x1 conv + BN shortcut."""
    kind: str
    planes: int
    strides: int
    downsample: bool
    padding: str
    fill: str
    pool: str
    blur_filter_size: int
    blur_padding: str
    blur_fill: str
    dtype: Any
    param_dtype: Any
    bn_axis_name: str | None
    zero_init_residual: bool

    def _layers(self):
        """(name, kernel, stride) of the main branch, with "blur" standing for the BlurPool."""
        s, blur = self.strides, self.pool == "blur" and self.strides > 1
        if self.kind == "basic":
            if blur:
                return [("conv1", 3, 1), ("blur", self.blur_filter_size, s), ("conv2", 3, 1)]
            return [("conv1", 3, s), ("conv2", 3, 1)]
        if blur:
            return [("conv1", 1, 1), ("conv2", 3, 1), ("blur", self.blur_filter_size, s),
                    ("conv3", 1, 1)]
        return [("conv1", 1, 1), ("conv2", 3, s), ("conv3", 1, 1)]

    def _shortcut_layers(self):
        if not self.downsample:
            return []
        if self.pool == "blur" and self.strides > 1:
            return [("downsample_blur", self.blur_filter_size, self.strides),
                    ("downsample_conv", 1, 1)]
        return [("downsample_conv", 1, self.strides)]

    def _window(self, layers):
        return [(k, s, self.blur_padding if name.endswith("blur") else self.padding)
                for name, k, s in layers]

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv_kw = dict(padding=self.padding, fill=self.fill, dtype=self.dtype,
                       param_dtype=self.param_dtype, kernel_init=he_normal_fan_out)
        bn_kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, axis_name=self.bn_axis_name)
        blur_kw = dict(filter_size=self.blur_filter_size, padding=self.blur_padding,
                       fill=self.blur_fill)
        expansion = 1 if self.kind == "basic" else 4
        main = self._layers()
        convs = [n for n, _, _ in main if n.startswith("conv")]
        y = x
        for name, k, s in main:
            if name == "blur":
                y = BlurPool(strides=s, name="blur", **blur_kw)(y)
                continue
            last = name == convs[-1]
            width = self.planes * expansion if last else self.planes
            y = Conv(width, k, strides=s, name=name, **conv_kw)(y)
            scale_init = (nn.initializers.zeros if last and self.zero_init_residual
                          else nn.initializers.ones)
            y = BatchNorm(scale_init=scale_init, name="bn" + name[4:], **bn_kw)(y, train)
            if not last:
                y = nn.relu(y)

        # Align the shortcut with the branch: pad (F-Conv) or crop (valid) the block input.
        short = self._shortcut_layers()
        r = pad_or_crop_start(x, shortcut_pad(self._window(main), self._window(short)), self.fill)
        for name, k, s in short:
            if name == "downsample_blur":
                r = BlurPool(strides=s, name=name, **blur_kw)(r)
            else:
                r = Conv(self.planes * expansion, k, strides=s, name=name, **conv_kw)(r)
                r = BatchNorm(name="downsample_bn", **bn_kw)(r, train)
        r = crop_end_to(r, y.shape[1:-1])
        return nn.relu(y + r)

    def strides_of(self) -> list[tuple[str, int]]:
        """(submodule name, stride relative to the block input) of every spatial output."""
        out, cum = [], 1
        for name, _, s in self._layers():
            cum *= s
            out.append((name, cum))
            if name.startswith("conv"):
                out.append(("bn" + name[4:], cum))
        cum = 1
        for name, _, s in self._shortcut_layers():
            cum *= s
            out.append((name, cum))
            if name == "downsample_conv":
                out.append(("downsample_bn", cum))
        return out


class ResNet(Model):
    """ResNet with ``padding`` "same" (torchvision), "full" (F-Conv) or "valid".

    Module names follow torchvision: ``conv1``, ``bn1``, ``maxpool`` (+ ``maxpool_blur``),
    blocks ``layer{1..4}_{j}`` holding ``conv1..3``, ``bn1..3``, ``downsample_conv``,
    ``downsample_bn`` (+ ``blur``, ``downsample_blur``), and the classifier ``head``.
    ``stem_pool_kernel`` defaults to 3 (same/valid, torchvision) or 2 (full, SPEC.md; and the
    stride-1 max-pool of every blur variant).
    """
    block: str = "basic"
    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
    pool: str = "max"
    global_pool: str = "avg"
    stem_pool_kernel: int | None = None
    blur_filter_size: int = 3
    blur_fill: str | None = None
    width: int = 64
    zero_init_residual: bool = False

    def check(self) -> None:
        super().check()
        _checks.choice("block", self.block, BLOCKS)
        _checks.choice("pool", self.pool, POOLS)
        _checks.choice("global_pool", self.global_pool, GLOBAL_POOLS)
        if self.stem_pool_kernel is not None:
            check_positive_int("stem_pool_kernel", self.stem_pool_kernel)
        check_positive_int("blur_filter_size", self.blur_filter_size)
        if self.blur_fill is not None:
            _checks.choice("blur_fill", self.blur_fill, FILLS)
        check_positive_int("width", self.width)
        if not self.stage_sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                       for n in self.stage_sizes):
            raise ValueError(f"stage_sizes must be a non-empty sequence of ints >= 1, "
                             f"got {self.stage_sizes!r}")

    # -- configuration derived from the fields (no shapes involved) --
    def _stem_pool(self):
        """(kernel, stride, padding, fill) of the stem max-pool."""
        blur = self.pool == "blur"
        kernel = self.stem_pool_kernel or (2 if blur or self.padding == "full" else 3)
        padding = "same" if self.padding == "same" and not blur else "valid"
        fill = "neutral" if self.fill == "zeros" else self.fill
        return kernel, 1 if blur else 2, padding, fill

    def _blur_padding(self):
        return self.padding

    def _blur_fill(self):
        if self.blur_fill is not None:
            return self.blur_fill
        return "reflect" if self.padding == "same" and self.fill == "zeros" else self.fill

    def _blocks(self):
        """(name, kwargs) for every residual block."""
        out, inplanes = [], self.width
        expansion = 1 if self.block == "basic" else 4
        for i, n in enumerate(self.stage_sizes):
            planes = self.width * 2 ** i
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                down = j == 0 and (stride != 1 or inplanes != planes * expansion)
                out.append((f"layer{i + 1}_{j}", dict(planes=planes, strides=stride,
                                                     downsample=down)))
                inplanes = planes * expansion
        return out

    def _block(self, name, cfg):
        return _Block(kind=self.block, padding=self.padding, fill=self.fill, pool=self.pool,
                      blur_filter_size=self.blur_filter_size, blur_padding=self._blur_padding(),
                      blur_fill=self._blur_fill(), dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name, zero_init_residual=self.zero_init_residual,
                      name=name, **cfg)

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv(self.width, 7, strides=2, padding=self.padding, fill=self.fill, dtype=self.dtype,
                 param_dtype=self.param_dtype, kernel_init=he_normal_fan_out, name="conv1")(x)
        x = BatchNorm(dtype=self.dtype, param_dtype=self.param_dtype,
                      axis_name=self.bn_axis_name, name="bn1")(x, train)
        x = nn.relu(x)
        k, s, p, f = self._stem_pool()
        x = MaxPool(k, strides=s, padding=p, fill=f, name="maxpool")(x)
        if self.pool == "blur":
            x = BlurPool(self.blur_filter_size, strides=2, padding=self._blur_padding(),
                         fill=self._blur_fill(), name="maxpool_blur")(x)
        for name, cfg in self._blocks():
            x = self._block(name, cfg)(x, train)
        return self.logits(global_pool(x, self.global_pool))

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        """Cumulative stride of every spatial module output (capture_intermediates paths)."""
        out = {"conv1": 2, "bn1": 2, "maxpool": 2 if self.pool == "blur" else 4}
        if self.pool == "blur":
            out["maxpool_blur"] = 4
        cum = 4
        for name, cfg in self._blocks():
            block = _Block(kind=self.block, padding=self.padding, fill=self.fill, pool=self.pool,
                           blur_filter_size=self.blur_filter_size, blur_padding="same",
                           blur_fill="zeros", dtype=self.dtype, param_dtype=self.param_dtype,
                           bn_axis_name=None, zero_init_residual=False, parent=None, **cfg)
            for sub, s in block.strides_of():
                out[f"{name}/{sub}"] = cum * s
            cum *= cfg["strides"]
            out[name] = cum
        return {k: (v, v) for k, v in out.items()}


def resnet(depth: int, **kwargs) -> ResNet:
    """ResNet-``depth`` (18, 34, 50, 101) with the given keyword arguments."""
    block = "basic" if depth < 50 else "bottleneck"
    return ResNet(block=block, stage_sizes=STAGE_SIZES[depth], **kwargs)


def resnet18(**kwargs) -> ResNet:
    return resnet(18, **kwargs)


def resnet34(**kwargs) -> ResNet:
    return resnet(34, **kwargs)


def resnet50(**kwargs) -> ResNet:
    return resnet(50, **kwargs)


def resnet101(**kwargs) -> ResNet:
    return resnet(101, **kwargs)


__all__ = ["ResNet", "resnet", "resnet18", "resnet34", "resnet50", "resnet101"]
