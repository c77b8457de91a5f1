"""ResNet-18/34/50/101 with the paper's padding switch (and BlurPool variants).

``padding="same"`` is layer for layer torchvision's ResNet (v1.5: a Bottleneck strides in its
3x3 conv), so torchvision checkpoints load unchanged. ``padding="full"`` is SPEC.md's
"F-Conv ResNet, exactly": every kxk conv pads k-1 (stem 7x7/2 pads 6, 3x3 pads 2), the stem
max-pool is kernel 2 stride 2 pad 0, and residuals are aligned by zero-padding the shortcut
(never by cropping): a BasicBlock identity is padded by 2 per side, its stride-2 downsample
input by 3; Bottleneck identity and downsample inputs by 1. Final maps at 224: 21x21 for
RN18 and RN50. ``padding="valid"`` crops the shortcut instead (centred), for completeness.

``pool="blur"`` (SPEC E3's S+BlurPool and F+BlurPool; the paper's code takes the BlurPool of
Zhang 2019, "Making convolutional networks shift-invariant again"): the stem max-pool becomes
max-pool kernel 2 stride 1 then BlurPool stride 2; in a strided block the conv that strided in
torchvision runs at stride 1 (with its BN and ReLU) and a BlurPool stride 2 follows it, i.e.
precedes the next conv; a strided downsample becomes BlurPool stride 2 then the 1x1 conv at
stride 1. The stem 7x7 conv keeps its stride. Block widths are torchvision's, so torchvision
weights load into the blur variants, and so do the paper's / Zhang's ``*_lpf`` checkpoints
(their keys ``conv2.1``, ``downsample.1`` ... are mapped by :mod:`jaxeq.weights`).

The blur is padded as the model: ``padding="same"`` pads ``(f-1)//2`` before and
``f-1-(f-1)//2`` after (1 and 1 for the default f=3), ``"full"`` pads ``f-1`` on both sides,
``"valid"`` not at all. Its fill is the model's ``fill`` unless ``blur_fill`` says otherwise;
for the paper's zero-padded models that is ZEROS, as the official Downsample (``models_lpf``
and ``models_fconv_lpf``, ``pad_type='zero'``) pads. ``blur_fill="reflect"`` gives the BlurPool of Zhang's own
antialiased-cnns (its ``BlurPool`` defaults to ``pad_type='reflect'``, with ``filt_size=4``).

``stem_pool_padding``: an explicit number of pixels padded on both sides of every spatial dim
before the stem max-pool instead of the mode's pads (as PyTorch's ``MaxPool2d(padding=p)``: -inf
for zero-filled models, the model's fill otherwise). The paper's 4QI ResNet-18 keeps
torchvision's ``MaxPool2d(3, 2, 1)`` with its kernel set to 2: ``stem_pool_kernel=2,
stem_pool_padding=1``.
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
    stride-1 max-pool of every blur variant). ``stem_pool_padding`` (None: the mode's pads) pads
    that many pixels on both sides before the stem max-pool, as ``MaxPool2d(padding=...)``.
    ``blur_fill`` (None: the model's ``fill``) is the fill of every BlurPool.
    """
    block: str = "basic"
    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
    pool: str = "max"
    global_pool: str = "avg"
    stem_pool_kernel: int | None = None
    stem_pool_padding: int | None = None
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
        if self.stem_pool_padding is not None:
            p, k = self.stem_pool_padding, self._stem_pool_kernel()
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= k // 2:
                raise ValueError(f"stem_pool_padding must be None or an int in 0..{k // 2} (at "
                                 f"most half the stem max-pool kernel {k}), got {p!r}")
        check_positive_int("blur_filter_size", self.blur_filter_size)
        if self.blur_fill is not None:
            _checks.choice("blur_fill", self.blur_fill, FILLS)
        check_positive_int("width", self.width)
        if not self.stage_sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                       for n in self.stage_sizes):
            raise ValueError(f"stage_sizes must be a non-empty sequence of ints >= 1, "
                             f"got {self.stage_sizes!r}")

    # -- configuration derived from the fields (no shapes involved) --
    def _stem_pool_kernel(self):
        return self.stem_pool_kernel or (2 if self.pool == "blur" or self.padding == "full"
                                         else 3)

    def _stem_pool(self):
        """(kernel, stride, padding, fill) of the stem max-pool."""
        blur = self.pool == "blur"
        if self.stem_pool_padding is not None:
            padding = ((self.stem_pool_padding,) * 2,) * 2
        else:
            padding = "same" if self.padding == "same" and not blur else "valid"
        fill = "neutral" if self.fill == "zeros" else self.fill
        return self._stem_pool_kernel(), 1 if blur else 2, padding, fill

    def _blur_padding(self):
        return self.padding

    def _blur_fill(self):
        return self.fill if self.blur_fill is None else self.blur_fill

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
