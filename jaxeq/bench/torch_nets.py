"""PyTorch reference networks built from torch.nn (torchvision is not needed).

The single PyTorch twin of jaxeq's ResNets and DenseNet-121: the benchmark times them and
``tests/test_models_parity.py`` checks jaxeq's outputs against them. They are written from the
papers' descriptions, not from jaxeq's code. Parameter names follow torchvision, so
:func:`jaxeq.weights.load_torch` loads their random weights into the matching jaxeq model.

ResNet variants:

- ``full=False``: torchvision's ResNet (v1.5: a Bottleneck strides in its 3x3 conv).
- ``full=True``: SPEC.md's F-Conv ResNet: every kxk conv pads k-1, stem max-pool 2/2/0,
  shortcuts zero-padded (BasicBlock identity by 2, its downsample input by 3; Bottleneck
  identity and downsample input by 1).
- ``pool="blur"``: Zhang 2019's antialiased ResNet (SPEC E3 S+BlurPool / F+BlurPool). The stem
  max-pool becomes MaxPool2d(2, stride 1, no padding) then BlurPool stride 2; a strided block
  runs its strided conv at stride 1 and blurs (stride 2) after that conv's BN and ReLU; a
  strided downsample blurs (stride 2) before its 1x1 conv, which then has stride 1. The stem
  7x7 conv keeps stride 2. The blur is a fixed binomial depthwise conv; "same" models pad it
  as Zhang does (reflect, ``(f-1)//2`` before and ``ceil((f-1)/2)`` after), full models pad it
  with zeros by ``f-1`` each side. Blur modules hold no state-dict entries, so one torchvision
  checkpoint loads into all four variants.
"""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("max", "blur")


def binomial_kernel(filter_size: int) -> torch.Tensor:
    """Normalised 2-D binomial filter (outer product of a row of Pascal's triangle), (f, f)."""
    row = torch.tensor([math.comb(filter_size - 1, i) for i in range(filter_size)],
                       dtype=torch.float64)
    k = torch.outer(row, row)
    return (k / k.sum()).float()


class BlurPool(nn.Module):
    """Pad, depthwise binomial blur, subsample by ``stride`` (Zhang 2019's BlurPool)."""

    def __init__(self, channels: int, filter_size: int = 3, stride: int = 2, full: bool = False):
        super().__init__()
        f = filter_size
        if full:  # F-Conv blur: zeros, f-1 on each side
            self.pads, self.mode = (f - 1,) * 4, "constant"
        else:  # Zhang's: reflect, the odd pixel of an even filter at the end
            lo, hi = (f - 1) // 2, f - 1 - (f - 1) // 2
            self.pads, self.mode = (lo, hi, lo, hi), "reflect"
        self.stride = stride
        # Not persistent: the fixed filter stays out of state_dict (torchvision's keys only).
        kernel = binomial_kernel(f).expand(channels, 1, f, f).contiguous()
        self.register_buffer("filt", kernel, persistent=False)

    def forward(self, x):
        x = F.pad(x, self.pads, mode=self.mode) if any(self.pads) else x
        return F.conv2d(x, self.filt, stride=self.stride, groups=x.shape[1])


def _make_blur(channels: int, stride: int, *, filter_size: int, full: bool) -> BlurPool:
    return BlurPool(channels, filter_size, stride, full)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, full, blur=None):
        super().__init__()
        p = 2 if full else 1
        blurred = blur is not None and stride != 1
        self.conv1 = nn.Conv2d(cin, planes, 3, 1 if blurred else stride, p, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.blur = blur(planes, stride) if blurred else None
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, p, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = self.downsample_blur = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes, 1, 1 if blurred else stride, bias=False),
                nn.BatchNorm2d(planes))
            self.downsample_blur = blur(cin, stride) if blurred else None
        # SPEC.md: identity padded by 2, stride-2 downsample input by 3. With a blur the same
        # pads align the paths: the blur shifts the branch and the shortcut alike.
        self.short_pad = (2 if self.downsample is None else 3) if full else 0

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        if self.blur is not None:
            y = self.blur(y)
        y = self.bn2(self.conv2(y))
        r = F.pad(x, (self.short_pad,) * 4) if self.short_pad else x
        if self.downsample_blur is not None:
            r = self.downsample_blur(r)
        if self.downsample is not None:
            r = self.downsample(r)
        return F.relu(y + r)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, full, blur=None):
        super().__init__()
        blurred = blur is not None and stride != 1
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1 if blurred else stride, 2 if full else 1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.blur = blur(planes, stride) if blurred else None
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = self.downsample_blur = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes * 4, 1, 1 if blurred else stride, bias=False),
                nn.BatchNorm2d(planes * 4))
            self.downsample_blur = blur(cin, stride) if blurred else None
        self.short_pad = 1 if full else 0  # SPEC.md: identity and downsample input padded by 1

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        if self.blur is not None:
            y = self.blur(y)
        y = self.bn3(self.conv3(y))
        r = F.pad(x, (self.short_pad,) * 4) if self.short_pad else x
        if self.downsample_blur is not None:
            r = self.downsample_blur(r)
        if self.downsample is not None:
            r = self.downsample(r)
        return F.relu(y + r)


STAGES = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
          50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}


class ResNet(nn.Module):
    """ResNet-``depth``; ``full`` for F-Conv, ``pool="blur"`` for the antialiased variant."""

    def __init__(self, depth=18, full=False, num_classes=1000, pool="max", blur_filter_size=3):
        super().__init__()
        if depth not in STAGES:
            raise ValueError(f"depth must be one of {tuple(STAGES)}, got {depth!r}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        block, sizes = STAGES[depth]
        # blur(channels, stride) -> a BlurPool module, or None for the max-pool network.
        blur = (partial(_make_blur, filter_size=blur_filter_size, full=full)
                if pool == "blur" else None)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 6 if full else 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        if blur is not None:
            self.maxpool = nn.MaxPool2d(2, 1, 0)
            self.maxpool_blur = blur(64, 2)
        else:
            self.maxpool = nn.MaxPool2d(2, 2, 0) if full else nn.MaxPool2d(3, 2, 1)
            self.maxpool_blur = None
        cin = 64
        for i, n in enumerate(sizes):
            planes = 64 * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if i > 0 and j == 0 else 1, full, blur))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        if self.maxpool_blur is not None:
            x = self.maxpool_blur(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class _DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, feats):
        x = torch.cat(feats, 1)
        return self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    def __init__(self, n, cin, growth, bn_size):
        super().__init__()
        for i in range(n):
            self[f"denselayer{i + 1}"] = _DenseLayer(cin + i * growth, growth, bn_size)

    def forward(self, x):
        feats = [x]
        for layer in self.values():
            feats.append(layer(feats))
        return torch.cat(feats, 1)


class _Transition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet121(nn.Module):
    def __init__(self, num_classes=1000, growth=32, sizes=(6, 12, 24, 16), init=64, bn_size=4):
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(init))
        self.features.add_module("relu0", nn.ReLU())
        self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        c = init
        for i, n in enumerate(sizes):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i != len(sizes) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.relu(self.features(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(name: str, padding: str = "same", num_classes: int = 1000,
          pool: str = "max") -> nn.Module:
    """The torch twin of ``jaxeq.models.get(name, padding=padding)`` (and ``pool`` for the
    ResNets; "blur" is valid for the default zeros fill only, as the convs here pad zeros)."""
    if name.startswith("resnet") and padding in ("same", "full"):
        return ResNet(int(name[6:]), full=padding == "full", num_classes=num_classes, pool=pool)
    if name == "densenet121" and padding == "same" and pool == "max":
        return DenseNet121(num_classes=num_classes)
    raise ValueError(f"no torch twin for {name!r} with padding={padding!r}, pool={pool!r}")
