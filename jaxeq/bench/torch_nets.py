"""PyTorch reference networks built from torch.nn (torchvision is not needed).

The PyTorch twins of jaxeq's ResNets and DenseNet-121: the benchmark times them and the parity
tests (``tests/test_models_parity.py``, ``tests/test_train_step_parity.py``) check jaxeq's
outputs, gradients and BatchNorm statistics against them. Each class is written from the code
it stands for, named in its docstring: torchvision's ``torchvision/models/resnet.py`` and
``densenet.py``, and the paper's official code (github.com/oskyhn/CNNs-Without-Borders at
commit 4fae1d8, paths below under ``full_conv/Exp3_image_shifts/``). Module structure, and so
``state_dict`` keys, are those files' own; :func:`jaxeq.weights.load_torch` maps them to jaxeq.

The four ResNet variants of SPEC E3:

- same: torchvision's ResNet (:class:`ResNet`, ``full=False``);
- full: ``resnet_fconv.py`` (:class:`ResNet`, ``full=True``);
- same+BlurPool: ``models_lpf/resnet.py`` (:class:`ResNetLpf`, ``full=False``);
- full+BlurPool: ``models_fconv_lpf/resnet.py`` (:class:`ResNetLpf`, ``full=True``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("max", "blur")
PAD_TYPES = ("zero", "reflect", "replicate")


def _conv3x3(cin, cout, stride=1, padding=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=padding, bias=False)


def _conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


def _init_like_torchvision(net):
    """kaiming_normal(fan_out, relu) convs, BatchNorm weight 1 bias 0: the ``__init__`` loop of
    torchvision's ResNet, kept by ``resnet_fconv.py`` and the ``*_lpf`` ResNets."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


# ----------------------------------------------------------------------------------------------
# torchvision's ResNet and the paper's F-Conv ResNet

class BasicBlock(nn.Module):
    """torchvision ``resnet.py`` BasicBlock; ``full=True`` is ``resnet_fconv.py``'s (4fae1d8):
    3x3 convs pad 2, identity zero-padded by 2, a downsample's input zero-padded by 3."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, full=False):
        super().__init__()
        p = 2 if full else 1
        self.conv1 = _conv3x3(inplanes, planes, stride, p)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, p)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.full = full

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(F.pad(x, (3,) * 4) if self.full else x)
        else:
            identity = F.pad(x, (2,) * 4) if self.full else x
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """torchvision ``resnet.py`` Bottleneck (v1.5: the 3x3 conv strides); ``full=True`` is
    ``resnet_fconv.py``'s (4fae1d8): the 3x3 pads 2, identity and a downsample's input are
    zero-padded by 1."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, full=False):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, 2 if full else 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.full = full

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.full:
            x = F.pad(x, (1,) * 4)
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


STAGES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
          50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}


def _check_depth(depth):
    if depth not in STAGES:
        raise ValueError(f"depth must be one of {tuple(STAGES)}, got {depth!r}")


class ResNet(nn.Module):
    """torchvision's ``ResNet`` (``full=False``) or the paper's F-Conv ResNet of
    ``full_conv/Exp3_image_shifts/resnet_fconv.py`` at 4fae1d8 (``full=True``: stem conv pads 6,
    stem max-pool ``MaxPool2d(2, 2, 0)``). ``stem_pool`` overrides the stem max-pool as
    ``(kernel, stride, padding)``: the 4QI ResNet-18 of ``Exp1_image_boundary/QI_location.py``
    sets torchvision's kernel 3 to 2, i.e. ``(2, 2, 1)``. ``width`` (64 in both originals)
    scales every stage, ``width * 2**i`` planes, as jaxeq's ``ResNet.width``; the float64 tests
    use a narrow net because XLA:CPU convolves float64 with F-Conv pads on a slow path."""

    def __init__(self, depth=18, full=False, num_classes=1000, stem_pool=None, width=64):
        super().__init__()
        _check_depth(depth)
        kind, layers = STAGES[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.full = full
        planes = [width * 2 ** i for i in range(4)]
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=6 if full else 3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        k, s, p = stem_pool or ((2, 2, 0) if full else (3, 2, 1))
        self.maxpool = nn.MaxPool2d(kernel_size=k, stride=s, padding=p)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        _init_like_torchvision(self)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.full)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, full=self.full) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem(self, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------------------------
# The paper's BlurPool ResNets (models_lpf, models_fconv_lpf; from Zhang's antialiased-cnns)

class Downsample(nn.Module):
    """``Downsample`` of ``models_lpf/__init__.py`` (``full=False``) and of
    ``models_fconv_lpf/__init__.py`` (``full=True``) at 4fae1d8: pad, depthwise binomial blur,
    subsample. Pads ``((f-1)//2, ceil((f-1)/2))`` per dim (left/top first) or, full, ``f-1``
    on every side; ``pad_type`` defaults to ``"zero"`` there (Zhang's own antialiased-cnns
    ``BlurPool`` defaults to ``"reflect"``). The filter is a persistent buffer ``filt``
    (C, 1, f, f), built in float32 like the original, so it appears in ``state_dict``.
    ``filt_size == 1`` subsamples without a convolution, as the original does."""

    def __init__(self, pad_type="zero", filt_size=3, stride=2, channels=None, full=False):
        super().__init__()
        if pad_type not in PAD_TYPES:
            raise ValueError(f"pad_type must be one of {PAD_TYPES}, got {pad_type!r}")
        if not 1 <= filt_size <= 7:
            raise ValueError(f"filt_size must be in 1..7, got {filt_size!r}")
        self.filt_size, self.stride = filt_size, stride
        lo = filt_size - 1 if full else (filt_size - 1) // 2
        hi = filt_size - 1 if full else filt_size - 1 - (filt_size - 1) // 2
        self.pad_sizes = (lo, hi, lo, hi)  # (left, right, top, bottom), as F.pad reads them
        self.pad_mode = {"zero": "constant", "reflect": "reflect",
                         "replicate": "replicate"}[pad_type]
        a = np.array([float(math.comb(filt_size - 1, i)) for i in range(filt_size)])
        filt = torch.Tensor(a[:, None] * a[None, :])
        filt = filt / torch.sum(filt)
        self.register_buffer("filt", filt[None, None, :, :].repeat((channels, 1, 1, 1)))

    def forward(self, x):
        if self.filt_size == 1:
            return x[:, :, ::self.stride, ::self.stride]
        x = F.pad(x, self.pad_sizes, mode=self.pad_mode)
        return F.conv2d(x, self.filt, stride=self.stride, groups=x.shape[1])



class BasicBlockLpf(nn.Module):
    """BasicBlock of ``models_lpf/resnet.py`` (``full=False``) / ``models_fconv_lpf/resnet.py``
    (``full=True``) at 4fae1d8: conv1 never strides; a strided block's ``conv2`` is
    ``Sequential(Downsample, conv3x3)``, so the blur acts after ``relu(bn1(conv1(x)))``.
    Full: 3x3 convs pad 2, identity zero-padded by 2, the downsample's input by 3."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, filter_size=1, full=False,
                 pad_type="zero"):
        super().__init__()
        p = 2 if full else 1
        self.conv1 = _conv3x3(inplanes, planes, 1, p)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        if stride == 1:
            self.conv2 = _conv3x3(planes, planes, 1, p)
        else:
            self.conv2 = nn.Sequential(Downsample(pad_type, filter_size, stride, planes, full),
                                       _conv3x3(planes, planes, 1, p))
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.full = full

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(F.pad(x, (3,) * 4) if self.full else x)
        else:
            identity = F.pad(x, (2,) * 4) if self.full else x
        out += identity
        return self.relu(out)


class BottleneckLpf(nn.Module):
    """Bottleneck of ``models_lpf/resnet.py`` / ``models_fconv_lpf/resnet.py`` at 4fae1d8: the
    3x3 conv2 never strides; a strided block's ``conv3`` is ``Sequential(Downsample, conv1x1)``,
    so the blur acts after ``relu(bn2(conv2(.)))``. Full: the 3x3 pads 2, identity and the
    downsample's input are zero-padded by 1."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, filter_size=1, full=False,
                 pad_type="zero"):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, 1, 2 if full else 1)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride == 1:
            self.conv3 = _conv1x1(planes, planes * 4)
        else:
            self.conv3 = nn.Sequential(Downsample(pad_type, filter_size, stride, planes, full),
                                       _conv1x1(planes, planes * 4))
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.full = full

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.full:
            x = F.pad(x, (1,) * 4)
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


class ResNetLpf(nn.Module):
    """The BlurPool ResNet of ``full_conv/Exp3_image_shifts/models_lpf/resnet.py`` (S+BlurPool,
    ``full=False``) and ``models_fconv_lpf/resnet.py`` (F+BlurPool, ``full=True``) at 4fae1d8,
    with their default ``pool_only=True``: stem conv 7x7 stride 2 (pad 3, full 6), ``maxpool`` =
    ``Sequential(MaxPool2d(2, 1), Downsample)``; a strided stage's ``downsample`` is
    ``Sequential(Downsample, conv1x1 stride 1, BN)``, an unstrided one ``(conv1x1, BN)``.
    ``filter_size`` is the ``lpf<N>`` of the official ``--arch`` (E3 uses 3); ``pad_type`` is
    passed to every Downsample (the official code never passes it: "zero"). ``width`` is the
    originals' ``width_per_group`` (64; stage ``i`` has ``width * 2**i`` planes)."""

    def __init__(self, depth=18, full=False, num_classes=1000, filter_size=3, pad_type="zero",
                 width=64):
        super().__init__()
        _check_depth(depth)
        kind, layers = STAGES[depth]
        block = BasicBlockLpf if kind == "basic" else BottleneckLpf
        self.full, self.filter_size, self.pad_type = full, filter_size, pad_type
        planes = [width * 2 ** i for i in range(4)]
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=6 if full else 3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=1),
                                     Downsample(pad_type, filter_size, 2, planes[0], full))
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        _init_like_torchvision(self)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            parts = [Downsample(self.pad_type, self.filter_size, stride, self.inplanes,
                                self.full)] if stride != 1 else []
            parts += [_conv1x1(self.inplanes, planes * block.expansion, 1),
                      nn.BatchNorm2d(planes * block.expansion)]
            downsample = nn.Sequential(*parts)
        kw = dict(filter_size=self.filter_size, full=self.full, pad_type=self.pad_type)
        # (The original passes no filter size to layer1; it never strides, so none is used.)
        layers = [block(self.inplanes, planes, stride, downsample, **kw)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, **kw) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------------------------
# torchvision's DenseNet-121

class _DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, feats):
        x = torch.cat(feats, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


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
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet121(nn.Module):
    """torchvision ``densenet.py``'s DenseNet-121 (growth 32, blocks (6, 12, 24, 16), 64 stem
    features, bn_size 4, no dropout): ``features`` (conv0 7x7/2 pad 3, norm0, relu0, pool0
    MaxPool2d(3, 2, 1), dense blocks and transitions, norm5), then ReLU, global average pool
    and ``classifier``."""

    def __init__(self, num_classes=1000, growth=32, sizes=(6, 12, 24, 16), init=64, bn_size=4):
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(init))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
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


def resnet(depth: int, padding: str = "same", pool: str = "max", num_classes: int = 1000,
           filter_size: int = 3, pad_type: str = "zero", width: int = 64) -> nn.Module:
    """The reference for ``jaxeq.models.get(f"resnet{depth}", padding=padding, pool=pool,
    blur_filter_size=filter_size, width=width)`` (zeros fill; with ``pad_type="reflect"`` the
    twin of ``blur_fill="reflect"``)."""
    if padding not in ("same", "full"):
        raise ValueError(f"padding must be 'same' or 'full', got {padding!r}")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if pool == "blur":
        return ResNetLpf(depth, padding == "full", num_classes, filter_size, pad_type, width)
    return ResNet(depth, padding == "full", num_classes, width=width)


def build(name: str, padding: str = "same", num_classes: int = 1000,
          pool: str = "max") -> nn.Module:
    """The torch twin of ``jaxeq.models.get(name, padding=padding)`` (and ``pool`` for the
    ResNets; the references pad with zeros, so the jaxeq model must use ``fill="zeros"``)."""
    if name in ("resnet18", "resnet34", "resnet50", "resnet101") and padding in ("same", "full"):
        return resnet(int(name[6:]), padding, pool, num_classes)
    if name == "densenet121" and padding == "same" and pool == "max":
        return DenseNet121(num_classes=num_classes)
    raise ValueError(f"no torch twin for {name!r} with padding={padding!r}, pool={pool!r}")
