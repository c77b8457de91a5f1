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
and ``models_fconv_lpf``, ``pad_type='zero'``) pads. ``blur_fill="reflect"`` gives the BlurPool
of Zhang's own antialiased-cnns (its ``BlurPool`` defaults to ``pad_type='reflect'``, with
``filt_size=4``).

``stem_pool_padding``: an explicit number of pixels padded on both sides of every spatial dim
before the stem max-pool instead of the mode's pads (as PyTorch's ``MaxPool2d(padding=p)``: -inf
for zero-filled models, the model's fill otherwise). The paper's 4QI ResNet-18 keeps
torchvision's ``MaxPool2d(3, 2, 1)`` with its kernel set to 2: ``stem_pool_kernel=2,
stem_pool_padding=1``.
"""
from __future__ import annotations

from functools import partial

import flax.linen as nn

from jaxeq import _checks
from jaxeq.models.residual import BLOCKS, ResNetBase, by_depth
from jaxeq.models.stem import StemPool, stem_pool
from jaxeq.nn import BlurPool, MaxPool, he_normal_fan_out
from jaxeq.padding import FILLS

POOLS = ("max", "blur")
STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class ResNet(ResNetBase):
    """ResNet with ``padding`` "same" (torchvision), "full" (F-Conv) or "valid".

    Module names follow torchvision: ``conv1``, ``bn1``, ``maxpool`` (+ ``maxpool_blur``),
    blocks ``layer{1..4}_{j}`` holding ``conv1..3``, ``bn1..3``, ``downsample_conv``,
    ``downsample_bn`` (+ ``blur``, ``downsample_blur``), and the classifier ``head``.
    ``stem_pool_kernel`` defaults to 3 (same/valid, torchvision) or 2 (full, SPEC.md; and the
    stride-1 max-pool of every blur variant). ``stem_pool_padding`` (None: the mode's pads) pads
    that many pixels on both sides before the stem max-pool, as ``MaxPool2d(padding=...)``.
    ``blur_fill`` (None: the model's ``fill``) is the fill of every BlurPool.
    """
    pool: str = "max"
    stem_pool_kernel: int | None = None
    stem_pool_padding: int | None = None
    blur_filter_size: int = 3
    blur_fill: str | None = None
    zero_init_residual: bool = False

    def check(self) -> None:
        super().check()
        _checks.choice("pool", self.pool, POOLS)
        _checks.int_at_least("stem_pool_kernel", self.stem_pool_kernel, 1, allow_none=True)
        if self.stem_pool_padding is not None:
            p, k = self.stem_pool_padding, self._stem_pool().kernel
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= k // 2:
                raise ValueError(f"stem_pool_padding must be None or an int in 0..{k // 2} (at "
                                 f"most half the stem max-pool kernel {k}), got {p!r}")
        _checks.int_at_least("blur_filter_size", self.blur_filter_size, 1)
        if self.blur_fill is not None:
            _checks.choice("blur_fill", self.blur_fill, FILLS)

    # -- configuration derived from the fields (no shapes involved) --
    def _stem_pool(self) -> StemPool:
        """(kernel, stride, padding, fill) of the stem max-pool (:func:`stem_pool`)."""
        return stem_pool(self.padding, self.fill, kernel=self.stem_pool_kernel,
                         pad=self.stem_pool_padding, blur=self.pool == "blur")

    def _blur_filter_size(self) -> int | None:
        return self.blur_filter_size if self.pool == "blur" else None

    def _blur(self):
        """The BlurPool of the stem and the blocks: padded as the model, ``blur_fill``."""
        fill = self.fill if self.blur_fill is None else self.blur_fill
        return partial(BlurPool, self.blur_filter_size, padding=self.padding, fill=fill)

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers = self.block_layers(he_normal_fan_out)
        x = layers["conv"](self.width, 7, strides=2, name="conv1")(x)
        x = nn.relu(layers["norm"](name="bn1")(x, train))
        k, s, p, f = self._stem_pool()
        x = MaxPool(k, strides=s, padding=p, fill=f, name="maxpool")(x)
        if self.pool == "blur":
            x = self._blur()(strides=2, name="maxpool_blur")(x)
        return self._stages(x, train, blur=self._blur() if self.pool == "blur" else None,
                            zero_init_residual=self.zero_init_residual, **layers)

    def feature_strides(self) -> dict[str, tuple[int, ...]]:
        """Cumulative stride of every spatial module output (capture_intermediates paths)."""
        out = {"conv1": 2, "bn1": 2, "maxpool": 2 if self.pool == "blur" else 4}
        if self.pool == "blur":
            out["maxpool_blur"] = 4
        return {**{k: (v, v) for k, v in out.items()}, **self._block_strides((4, 4))}


def resnet(depth: int, **kwargs) -> ResNet:
    """ResNet-``depth`` (18, 34, 50, 101) with the given keyword arguments."""
    return by_depth(ResNet, STAGE_SIZES, depth, **kwargs)


resnet18 = partial(resnet, 18)
resnet34 = partial(resnet, 34)
resnet50 = partial(resnet, 50)
resnet101 = partial(resnet, 101)

__all__ = ["BLOCKS", "POOLS", "ResNet", "resnet", "resnet18", "resnet34", "resnet50",
           "resnet101"]
