"""3-D ResNet-18/34/50 for video (E5): Hara et al.'s 3D-ResNets-PyTorch and the F-Conv
versions of Kayhan & van Gemert (Exp5 action recognition), with separate spatial and temporal
padding.

Input NDHWC: (N, T, H, W, C). Layer for layer Hara's ``models/resnet.py`` with shortcut type B
(the default of the authors' ``opts.py``), so its checkpoints load: stem ``conv1`` 7x7x7 stride
(``temporal_stem_stride``, 2, 2), ``bn1``, ReLU, ``maxpool`` 3x3x3 stride 2; four stages of
BasicBlocks (18: 2, 2, 2, 2; 34: 3, 4, 6, 3) or Bottlenecks (50: 3, 4, 6, 3; the 3x3x3 conv
strides) with 3x3x3 convs, widths 64, 128, 256, 512 (x4 for Bottlenecks), stage strides 1, 2,
2, 2 in all three dims, a 1x1x1 conv + BatchNorm shortcut (``downsample``) wherever the shape
changes; global average pool and the classifier ``head`` (400 Kinetics classes by default).

``padding`` / ``fill`` apply to H and W, ``temporal_padding`` / ``temporal_fill`` to T.
``temporal_padding`` defaults to "same" whatever ``padding`` is, because the paper's F-Conv
network (``models/resnet_fconv.py``, the one ``main.py`` runs unless ``--temporal True``) is
full in space only; ``temporal_fill`` defaults to ``fill``. Per group of dims:

- "same": Hara's padding: the stem pads 3, each 3x3x3 conv 1.
- "full" (F-Conv): every kxkxk conv pads k-1 on those dims (stem 6, 3x3x3 2, 1x1x1 0).
  Residuals are aligned by padding the block input with that group's fill before the shortcut
  (never by cropping), by the amount :func:`jaxeq.nn.shortcut_pad` gives for that group's chain
  of windows: a BasicBlock identity by 2 per side, its stride-2 downsample input by 3; a
  Bottleneck's identity and downsample input by 1. A "same" group gets 0, so the paper's
  network pads shortcuts in H and W only, as the authors' ``ConstantPad3d((2,2,2,2,0,0))``.
- "valid": no padding; the shortcut is cropped instead (centred), as in ``resnet.py``.

The stem max-pool is kernel 3, stride 2, padded 1 (with -inf for the zero fill) on "same" and
"full" dims alike, as in both of the authors' F-Conv files (it covers every input pixel, so no
content is dropped); on "valid" dims it is unpadded.

The authors' full spatio-temporal variant (``models/resnet_fconv_tem.py``) also strides the
stem by 2 in time: it is ``FCONV_TEMPORAL`` = ``dict(padding="full", temporal_padding="full",
temporal_stem_stride=2)``.

``jaxeq.nn.Conv`` and ``MaxPool`` take one ``fill`` for all dims, so when the temporal fill
differs from the spatial one, T is padded here with ``jaxeq.pad`` before the layer pads H, W.
Module names: ``conv1``, ``bn1``, ``maxpool``, ``layer{1..4}_{j}/{conv1..3, bn1..3,
downsample_conv, downsample_bn}``, ``head`` (torch: ``layer1.0.conv1``, ``downsample.0``,
``fc``).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxeq import _checks
from jaxeq.models._common import GLOBAL_POOLS, Model, check_positive_int, global_pool
from jaxeq.nn import BatchNorm, Conv, MaxPool, crop_end_to, he_normal_fan_out, shortcut_pad
from jaxeq.padding import FILLS, PADDINGS, pad, padding_pairs

BLOCKS = ("basic", "bottleneck")
STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
STEM_KERNEL = 7
POOL_KERNEL = 3
# The authors' spatio-temporal F-Conv 3D ResNet (models/resnet_fconv_tem.py).
FCONV_TEMPORAL = dict(padding="full", temporal_padding="full", temporal_stem_stride=2)


# ----------------------------------------------------------------------------------------------
# Per-dim padding: T follows (temporal mode, temporal fill), H and W (mode, fill).

def _pairs(kernel, stride, modes) -> tuple[tuple[int, int], ...]:
    """(lo, hi) pads for (T, H, W) of a window layer; ``modes`` = (temporal, spatial)."""
    (t,) = padding_pairs(modes[0], kernel[:1], stride=stride[:1])
    return (t,) + padding_pairs(modes[1], kernel[1:], stride=stride[1:])


def _pad_time_first(x, pairs, fills):
    """When T's fill differs from H/W's, pad T here and leave only H/W pads to the layer.

    Returns (x, pairs, fill) for the layer. The fill "neutral" (max-pool) pads with -inf.
    """
    t_fill, fill = fills
    if t_fill == fill:
        return x, pairs, fill
    t_pairs = (pairs[0], (0, 0), (0, 0))
    if t_fill == "neutral":
        x = pad(x, t_pairs, "zeros", value=-jnp.inf)
    else:
        x = pad(x, t_pairs, t_fill)
    return x, ((0, 0),) + tuple(pairs[1:]), fill


def _align_start(x, amounts, fills):
    """Pad (> 0, both sides, with that group's fill) or crop (< 0, leading side) the T dim by
    ``amounts[0]`` and the H, W dims by ``amounts[1]``: :func:`jaxeq.nn.pad_or_crop_start` per
    group of dims. The trailing side is fixed by :func:`jaxeq.nn.crop_end_to`."""
    for dims, amount, fill in (((0,), amounts[0], fills[0]), ((1, 2), amounts[1], fills[1])):
        if amount > 0:
            x = pad(x, tuple((amount, amount) if d in dims else (0, 0) for d in range(3)), fill)
        elif amount < 0:
            x = x[(slice(None),) + tuple(slice(-amount, None) if d in dims else slice(None)
                                         for d in range(3))]
    return x


class _Block3D(nn.Module):
    """BasicBlock or Bottleneck with 3x3x3 convs; ``downsample`` adds the 1x1x1 conv + BN."""
    kind: str
    planes: int
    strides: int
    downsample: bool
    modes: tuple[str, str]   # (temporal, spatial) padding
    fills: tuple[str, str]   # (temporal, spatial) fill
    dtype: Any
    param_dtype: Any
    bn_axis_name: str | None

    def _layers(self):
        """(name, kernel, stride) of the main branch."""
        s = self.strides
        if self.kind == "basic":
            return [("conv1", 3, s), ("conv2", 3, 1)]
        return [("conv1", 1, 1), ("conv2", 3, s), ("conv3", 1, 1)]

    def _shortcut_layers(self):
        return [("downsample_conv", 1, self.strides)] if self.downsample else []

    def _conv(self, x, name, features, k, s):
        pairs = _pairs((k,) * 3, (s,) * 3, self.modes)
        x, pairs, fill = _pad_time_first(x, pairs, self.fills)
        return Conv(features, k, strides=s, padding=pairs, fill=fill, dtype=self.dtype,
                    param_dtype=self.param_dtype, kernel_init=he_normal_fan_out, name=name)(x)

    @nn.compact
    def __call__(self, x, train: bool = False):
        bn_kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, axis_name=self.bn_axis_name)
        out = self.planes * (1 if self.kind == "basic" else 4)
        main = self._layers()
        y = x
        for name, k, s in main:
            last = name == main[-1][0]
            y = self._conv(y, name, out if last else self.planes, k, s)
            y = BatchNorm(name="bn" + name[4:], **bn_kw)(y, train)
            if not last:
                y = nn.relu(y)

        # Align the shortcut with the branch, per group of dims (see the module docstring).
        short = self._shortcut_layers()
        amounts = tuple(shortcut_pad([(k, s, mode) for _, k, s in main],
                                     [(k, s, mode) for _, k, s in short])
                        for mode in self.modes)
        r = _align_start(x, amounts, self.fills)
        for name, k, s in short:
            r = self._conv(r, name, out, k, s)
            r = BatchNorm(name="downsample_bn", **bn_kw)(r, train)
        r = crop_end_to(r, y.shape[1:-1])
        return nn.relu(y + r)

    def strides_of(self) -> list[tuple[str, int]]:
        """(submodule name, stride relative to the block input) of every spatial output."""
        out, cum = [], 1
        for name, _, s in self._layers():
            cum *= s
            out += [(name, cum), ("bn" + name[4:], cum)]
        for name, _, s in self._shortcut_layers():
            out += [(name, s), ("downsample_bn", s)]
        return out


class ResNet3D(Model):
    """3-D ResNet (Hara et al.; F-Conv as Kayhan & van Gemert) on (N, T, H, W, C) input; see
    the module docstring."""
    num_classes: int = 400
    block: str = "basic"
    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
    temporal_padding: str = "same"
    temporal_fill: str | None = None
    temporal_stem_stride: int = 1
    global_pool: str = "avg"
    width: int = 64

    def check(self) -> None:
        super().check()
        _checks.choice("block", self.block, BLOCKS)
        _checks.choice("global_pool", self.global_pool, GLOBAL_POOLS)
        _checks.choice("temporal_padding", self.temporal_padding, PADDINGS)
        check_positive_int("temporal_stem_stride", self.temporal_stem_stride)
        if self.temporal_fill is not None:
            _checks.choice("temporal_fill", self.temporal_fill, FILLS)
        check_positive_int("width", self.width)
        if not self.stage_sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                       for n in self.stage_sizes):
            raise ValueError(f"stage_sizes must be a non-empty sequence of ints >= 1, "
                             f"got {self.stage_sizes!r}")

    # -- configuration derived from the fields --
    def _modes(self) -> tuple[str, str]:
        return (self.temporal_padding, self.padding)

    def _fills(self) -> tuple[str, str]:
        return (self.temporal_fill or self.fill, self.fill)

    def _stem_stride(self) -> tuple[int, int, int]:
        return (self.temporal_stem_stride, 2, 2)

    def _stem_pool(self):
        """(kernel, padding pairs, fills) of the stem max-pool: kernel 3, stride 2, padded 1
        on same and full dims, unpadded on valid dims; the zero fill pads with -inf."""
        kernel = (POOL_KERNEL,) * 3
        modes = tuple("valid" if m == "valid" else "same" for m in self._modes())
        fills = tuple("neutral" if f == "zeros" else f for f in self._fills())
        return kernel, _pairs(kernel, (2, 2, 2), modes), fills

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

    @nn.compact
    def __call__(self, x, train: bool = False):
        _checks.spatial_rank("x", x, 3)
        stride = self._stem_stride()
        x, pairs, fill = _pad_time_first(x, _pairs((STEM_KERNEL,) * 3, stride, self._modes()),
                                         self._fills())
        x = Conv(self.width, STEM_KERNEL, strides=stride, padding=pairs, fill=fill,
                 dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=he_normal_fan_out,
                 name="conv1")(x)
        x = BatchNorm(dtype=self.dtype, param_dtype=self.param_dtype,
                      axis_name=self.bn_axis_name, name="bn1")(x, train)
        x = nn.relu(x)
        kernel, pairs, fills = self._stem_pool()
        x, pairs, fill = _pad_time_first(x, pairs, fills)
        x = MaxPool(kernel, strides=2, padding=pairs, fill=fill, name="maxpool")(x)
        for name, cfg in self._blocks():
            x = _Block3D(kind=self.block, modes=self._modes(), fills=self._fills(),
                         dtype=self.dtype, param_dtype=self.param_dtype,
                         bn_axis_name=self.bn_axis_name, name=name, **cfg)(x, train)
        return self.logits(global_pool(x, self.global_pool))

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        """Cumulative (T, H, W) stride of every spatial module output."""
        stem = self._stem_stride()
        cum = tuple(2 * s for s in stem)
        out = {"conv1": stem, "bn1": stem, "maxpool": cum}
        for name, cfg in self._blocks():
            block = _Block3D(kind=self.block, modes=self._modes(), fills=self._fills(),
                             dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=None,
                             parent=None, **cfg)
            for sub, s in block.strides_of():
                out[f"{name}/{sub}"] = tuple(c * s for c in cum)
            cum = tuple(c * cfg["strides"] for c in cum)
            out[name] = cum
        return out


def resnet3d(depth: int, **kwargs) -> ResNet3D:
    """3-D ResNet-``depth`` (18, 34, 50) with the given keyword arguments."""
    block = "basic" if depth < 50 else "bottleneck"
    return ResNet3D(block=block, stage_sizes=STAGE_SIZES[depth], **kwargs)


def resnet3d_18(**kwargs) -> ResNet3D:
    return resnet3d(18, **kwargs)


def resnet3d_34(**kwargs) -> ResNet3D:
    return resnet3d(34, **kwargs)


def resnet3d_50(**kwargs) -> ResNet3D:
    return resnet3d(50, **kwargs)


__all__ = ["FCONV_TEMPORAL", "ResNet3D", "resnet3d", "resnet3d_18", "resnet3d_34", "resnet3d_50"]
