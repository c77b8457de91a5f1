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
  (never by cropping), by the amount :func:`jaxeq.padding.shortcut_pad` gives for that group's chain
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

The blocks are :class:`jaxeq.models.residual.ResidualBlock`, as the 2-D ResNet's; convs and
pools get one padding mode and one fill per dim, ``(temporal, spatial, spatial)``.
Module names: ``conv1``, ``bn1``, ``maxpool``, ``layer{1..4}_{j}/{conv1..3, bn1..3,
downsample_conv, downsample_bn}``, ``head`` (torch: ``layer1.0.conv1``, ``downsample.0``,
``fc``).
"""
from __future__ import annotations

from functools import partial

import flax.linen as nn

from jaxeq import _checks
from jaxeq.models.residual import BLOCKS, ResNetBase, by_depth
from jaxeq.models.stem import stem_pool
from jaxeq.nn import MaxPool, he_normal_fan_out
from jaxeq.padding import FILLS, PADDINGS

STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
STEM_KERNEL = 7
POOL_KERNEL = 3
# The authors' spatio-temporal F-Conv 3D ResNet (models/resnet_fconv_tem.py).
FCONV_TEMPORAL = dict(padding="full", temporal_padding="full", temporal_stem_stride=2)


class ResNet3D(ResNetBase):
    """3-D ResNet (Hara et al.; F-Conv as Kayhan & van Gemert) on (N, T, H, W, C) input; see
    the module docstring."""
    num_classes: int = 400
    temporal_padding: str = "same"
    temporal_fill: str | None = None
    temporal_stem_stride: int = 1

    def check(self) -> None:
        super().check()
        _checks.choice("temporal_padding", self.temporal_padding, PADDINGS)
        _checks.int_at_least("temporal_stem_stride", self.temporal_stem_stride, 1)
        if self.temporal_fill is not None:
            _checks.choice("temporal_fill", self.temporal_fill, FILLS)

    # -- configuration derived from the fields: (T, H, W) --
    def _modes(self) -> tuple[str, str, str]:
        return (self.temporal_padding, self.padding, self.padding)

    def _fills(self) -> tuple[str, str, str]:
        return (self.temporal_fill or self.fill, self.fill, self.fill)

    def _stem_stride(self) -> tuple[int, int, int]:
        return (self.temporal_stem_stride, 2, 2)

    def _stem_pool(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(padding modes, fills) per dim of the stem max-pool, kernel 3 stride 2: both of the
        authors' F-Conv files keep Hara's padded pool on full dims, so "full" pools as "same"."""
        pools = [stem_pool("valid" if m == "valid" else "same", f, kernel=POOL_KERNEL)
                 for m, f in zip(self._modes(), self._fills())]
        return tuple(p.padding for p in pools), tuple(p.fill for p in pools)

    @nn.compact
    def __call__(self, x, train: bool = False):
        _checks.spatial_rank("x", x, 3)
        layers = self.block_layers(he_normal_fan_out, self._modes(), self._fills())
        x = layers["conv"](self.width, STEM_KERNEL, strides=self._stem_stride(), name="conv1")(x)
        x = nn.relu(layers["norm"](name="bn1")(x, train))
        modes, fills = self._stem_pool()
        x = MaxPool(POOL_KERNEL, strides=2, padding=modes, fill=fills, name="maxpool")(x)
        return self._stages(x, train, **layers)

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        """Cumulative (T, H, W) stride of every spatial module output."""
        stem = self._stem_stride()
        cum = tuple(2 * s for s in stem)
        return {"conv1": stem, "bn1": stem, "maxpool": cum, **self._block_strides(cum)}


def resnet3d(depth: int, **kwargs) -> ResNet3D:
    """3-D ResNet-``depth`` (18, 34, 50) with the given keyword arguments."""
    return by_depth(ResNet3D, STAGE_SIZES, depth, **kwargs)


resnet3d_18 = partial(resnet3d, 18)
resnet3d_34 = partial(resnet3d, 34)
resnet3d_50 = partial(resnet3d, 50)

__all__ = ["BLOCKS", "FCONV_TEMPORAL", "ResNet3D", "resnet3d", "resnet3d_18", "resnet3d_34",
           "resnet3d_50"]
