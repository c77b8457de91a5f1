"""Residual blocks and stage layout shared by the 2-D ResNet and the 3-D ResNet.

A block's static layout (kind, width, stride, shortcut, blur) is a :class:`BlockSpec`, declared
once by :func:`block_specs` and read by the block itself, by ``feature_strides()`` and by
:mod:`jaxeq.weights`. The layers are injected, as in flax's ImageNet example: the model hands
:class:`ResidualBlock` a ``conv`` and a ``norm`` (``functools.partial`` of :class:`jaxeq.nn.Conv`
and :class:`jaxeq.nn.BatchNorm` with padding, fill, dtypes and init bound) and, for
antialiased variants, a ``blur`` (a partial of :class:`jaxeq.nn.BlurPool`). The same block
therefore serves 2-D and 3-D inputs and any per-dim padding.

Module names follow torchvision: ``conv1..3``, ``bn1..3``, ``downsample_conv``,
``downsample_bn`` (+ ``blur``, ``downsample_blur``).
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn

from jaxeq import _checks
from jaxeq.models._common import GLOBAL_POOLS, Block, Model, ModuleDef, global_pool
from jaxeq.padding import crop_end_to, dim_modes, pad_or_crop_start, shortcut_pad

BLOCKS = ("basic", "bottleneck")
EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """Static layout of one residual block.

    ``stride`` is the block's stride (torchvision: in conv1 of a BasicBlock, conv2 of a
    Bottleneck). With ``blur_filter_size`` (the antialiased variants) that conv runs at stride
    1 and a BlurPool of that stride follows it; a strided downsample becomes BlurPool then the
    1x1 conv at stride 1.
    """
    kind: str
    planes: int
    stride: int
    downsample: bool
    blur_filter_size: int | None = None

    @property
    def out_planes(self) -> int:
        return self.planes * EXPANSION[self.kind]

    @property
    def blurred(self) -> bool:
        return self.blur_filter_size is not None and self.stride > 1

    def layers(self) -> list[tuple[str, int, int]]:
        """(name, kernel, stride) of the main branch, "blur" standing for the BlurPool."""
        s = self.stride
        if self.kind == "basic":
            if self.blurred:
                return [("conv1", 3, 1), ("blur", self.blur_filter_size, s), ("conv2", 3, 1)]
            return [("conv1", 3, s), ("conv2", 3, 1)]
        if self.blurred:
            return [("conv1", 1, 1), ("conv2", 3, 1), ("blur", self.blur_filter_size, s),
                    ("conv3", 1, 1)]
        return [("conv1", 1, 1), ("conv2", 3, s), ("conv3", 1, 1)]

    def shortcut_layers(self) -> list[tuple[str, int, int]]:
        """(name, kernel, stride) of the shortcut path (empty for an identity shortcut)."""
        if not self.downsample:
            return []
        if self.blurred:
            return [("downsample_blur", self.blur_filter_size, self.stride),
                    ("downsample_conv", 1, 1)]
        return [("downsample_conv", 1, self.stride)]

    def strides_of(self) -> list[tuple[str, int]]:
        """(submodule name, stride relative to the block input) of every spatial output."""
        out = []
        for layers, norm in ((self.layers(), lambda n: "bn" + n[4:]),
                             (self.shortcut_layers(), lambda n: "downsample_bn")):
            cum = 1
            for name, _, s in layers:
                cum *= s
                out.append((name, cum))
                if not name.endswith("blur"):
                    out.append((norm(name), cum))
        return out


def block_specs(kind: str, stage_sizes: tuple[int, ...], width: int,
                blur_filter_size: int | None = None) -> list[tuple[str, BlockSpec]]:
    """(module name ``layer{i}_{j}``, spec) of every block: stage ``i`` has width
    ``width * 2**i`` and strides 2 in its first block (except stage 1); a block gets a
    downsample wherever its stride or channel count changes."""
    out, inplanes = [], width
    for i, n in enumerate(stage_sizes):
        planes = width * 2 ** i
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            down = j == 0 and (stride != 1 or inplanes != planes * EXPANSION[kind])
            out.append((f"layer{i + 1}_{j}", BlockSpec(kind, planes, stride, down,
                                                       blur_filter_size)))
            inplanes = planes * EXPANSION[kind]
    return out


def by_depth(cls: type, stage_sizes: dict[int, tuple[int, ...]], depth: int, **kwargs):
    """``cls`` at ``depth`` layers (a key of ``stage_sizes``): BasicBlocks below 50 layers,
    Bottlenecks from 50, as torchvision and Hara et al."""
    block = "basic" if depth < 50 else "bottleneck"
    return cls(block=block, stage_sizes=stage_sizes[depth], **kwargs)


class ResidualBlock(Block):
    """BasicBlock or Bottleneck laid out by ``spec``, built from the injected layers.

    ``padding`` (one mode or one per spatial dim) and ``fill`` are the model's: the block
    input is padded (F-Conv) or cropped (valid) before the shortcut so that its pixels line up
    with the main branch's, per dim (:func:`jaxeq.padding.shortcut_pad`); the trailing side is
    cropped to the branch. BlurPools are padded as the convs.
    """
    spec: BlockSpec
    blur: ModuleDef | None = None
    zero_init_residual: bool = False

    def _shortcut_pads(self, ndim: int, main, short) -> tuple[int, ...]:
        pads = {m: shortcut_pad([(k, s, m) for _, k, s in main], [(k, s, m) for _, k, s in short])
                for m in set(dim_modes(self.padding, ndim))}
        return tuple(pads[m] for m in dim_modes(self.padding, ndim))

    @nn.compact
    def __call__(self, x, train: bool = False):
        spec = self.spec
        main = spec.layers()
        last = [n for n, _, _ in main if n != "blur"][-1]
        y = x
        for name, k, s in main:
            if name == "blur":
                y = self.blur(strides=s, name="blur")(y)
                continue
            y = self.conv(spec.out_planes if name == last else spec.planes, k, strides=s,
                          name=name)(y)
            scale_init = (nn.initializers.zeros if name == last and self.zero_init_residual
                          else nn.initializers.ones)
            y = self.norm(scale_init=scale_init, name="bn" + name[4:])(y, train)
            if name != last:
                y = nn.relu(y)

        short = spec.shortcut_layers()
        r = pad_or_crop_start(x, self._shortcut_pads(x.ndim - 2, main, short), self.fill)
        for name, k, s in short:
            if name == "downsample_blur":
                r = self.blur(strides=s, name=name)(r)
            else:
                r = self.conv(spec.out_planes, k, strides=s, name=name)(r)
                r = self.norm(name="downsample_bn")(r, train)
        r = crop_end_to(r, y.shape[1:-1])
        return nn.relu(y + r)


class ResNetBase(Model):
    """Fields, checks, stages and strides shared by :class:`jaxeq.models.ResNet` and
    :class:`jaxeq.models.ResNet3D`; subclasses build the stem and the injected layers."""
    block: str = "basic"
    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
    global_pool: str = "avg"
    width: int = 64

    def check(self) -> None:
        super().check()
        _checks.choice("block", self.block, BLOCKS)
        _checks.choice("global_pool", self.global_pool, GLOBAL_POOLS)
        _checks.int_at_least("width", self.width, 1)
        _checks.int_sequence("stage_sizes", self.stage_sizes, 1)

    def _blur_filter_size(self) -> int | None:
        """Filter size of the blocks' BlurPools, None without blur."""
        return None

    def _blocks(self) -> list[tuple[str, BlockSpec]]:
        """(name, spec) of every residual block."""
        return block_specs(self.block, tuple(self.stage_sizes), self.width,
                           self._blur_filter_size())

    def _stages(self, x, train: bool, **layers):
        """Every residual block on ``x``, then the global pool and the ``head``; ``layers``
        are :class:`ResidualBlock`'s injected fields (:meth:`block_layers` and the blur)."""
        for name, spec in self._blocks():
            x = ResidualBlock(spec=spec, name=name, **layers)(x, train)
        return self.logits(global_pool(x, self.global_pool))

    def _block_strides(self, start: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Cumulative stride of every block output and block submodule output, from the
        stride ``start`` of the first block's input."""
        out, cum = {}, start
        for name, spec in self._blocks():
            for sub, s in spec.strides_of():
                out[f"{name}/{sub}"] = tuple(c * s for c in cum)
            cum = tuple(c * spec.stride for c in cum)
            out[name] = cum
        return out


__all__ = ["BLOCKS", "BlockSpec", "ResNetBase", "ResidualBlock", "block_specs", "by_depth"]
