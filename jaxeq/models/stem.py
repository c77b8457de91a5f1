"""The stem max-pool rule shared by ResNet, DenseNet and the 3-D ResNet.

One function decides kernel, stride, padding and fill of the max-pool after a model's stem
conv from the model's padding mode, so every model (and the probe) pools the same way:

- ``padding="same"``: torchvision's ``MaxPool(3, 2, 1)`` (kernel 3, "same" pads 1 per side);
- ``padding="full"``: SPEC.md's F-Conv ResNet, kernel 2 stride 2 unpadded (it covers every
  input pixel, so nothing is dropped and nothing is padded);
- ``padding="valid"``: unpadded, with the model family's kernel (``kernels``);
- ``blur=True``: Zhang's antialiased stem, ``MaxPool(2, stride=1)`` unpadded (a BlurPool of
  stride 2 follows it in the model);
- ``pad``: that many pixels on both sides of every spatial dim instead of the mode's pads, as
  PyTorch's ``MaxPool2d(padding=pad)`` (the paper's 4QI ResNet-18: kernel 2, pad 1).

The fill is :func:`pool_fill` of the model's fill: -inf ("neutral", PyTorch's max-pool
padding) for zero-padded models, the model's own fill otherwise.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

# Default stem max-pool kernel per model padding (without blur): torchvision's 3 for "same",
# SPEC.md's 2 for F-Conv. ResNets keep torchvision's 3 when unpadded; DenseNet takes 2.
RESNET_STEM_KERNELS: Mapping[str, int] = {"same": 3, "valid": 3, "full": 2}
DENSENET_STEM_KERNELS: Mapping[str, int] = {"same": 3, "valid": 2, "full": 2}
BLUR_STEM_KERNEL = 2


def pool_fill(fill: str) -> str:
    """Max-pool fill for a model's conv ``fill``: "neutral" (pad with -inf, as PyTorch's
    max-pool) for "zeros", else the fill itself (circular, reflect, replicate)."""
    return "neutral" if fill == "zeros" else fill


class StemPool(NamedTuple):
    """Arguments of the stem max-pool: ``MaxPool(kernel, strides=stride, padding=padding,
    fill=fill)``; ``padding`` is a mode name or explicit ``(lo, hi)`` pairs."""
    kernel: int
    stride: int
    padding: Any
    fill: str


def stem_pool(padding: str, fill: str, *, kernel: int | None = None, pad: int | None = None,
              blur: bool = False, ndim: int = 2,
              kernels: Mapping[str, int] = RESNET_STEM_KERNELS) -> StemPool:
    """The stem max-pool of a model with conv ``padding`` (mode name) and ``fill``.

    ``kernel`` overrides the default kernel (``BLUR_STEM_KERNEL`` with ``blur``, else
    ``kernels[padding]``); ``pad`` (pixels per side, in every one of ``ndim`` spatial dims)
    overrides the mode's pads. See the module docstring for the rule.
    """
    if kernel is None:
        kernel = BLUR_STEM_KERNEL if blur else kernels[padding]
    if pad is not None:
        pool_padding: Any = ((pad, pad),) * ndim
    else:
        pool_padding = "same" if padding == "same" and not blur else "valid"
    return StemPool(kernel=kernel, stride=1 if blur else 2, padding=pool_padding,
                    fill=pool_fill(fill))


__all__ = ["DENSENET_STEM_KERNELS", "RESNET_STEM_KERNELS", "StemPool", "pool_fill", "stem_pool"]
