"""Numerical parity of jaxeq models with PyTorch networks built from torch.nn layers.

The references are written from the code they stand for, not from jaxeq's: the ResNets and
DenseNet-121 are the benchmark's (:mod:`jaxeq.bench.torch_nets`: torchvision's ResNet and the
paper's ``resnet_fconv.py``, ``models_lpf`` and ``models_fconv_lpf`` ResNets), VGG-16 follows
torchvision's ``vgg.py`` (F-Conv: the paper's ``vgg_fconv.py``, every 3x3 padded 2), BagNet
Brendel & Bethge's blocks (valid convs, residual cropped), the toy nets SPEC.md. They get random weights
(BatchNorm statistics included) and are converted with ``jaxeq.weights.load_torch``. float32
eval-mode logits must agree to 1e-4 relative to the logit scale, train mode in logits and in
the updated running statistics; float64 forwards to 1e-12 (one training step in float64:
``tests/test_train_step_parity.py``).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxeq import models
from jaxeq.weights import load_torch
from tests.conftest import torch_or_skip

torch = torch_or_skip()
from jaxeq.bench import torch_nets  # noqa: E402  (imports torch: only after the skip check)

tnn = torch.nn
F = torch.nn.functional

REL_TOL = 1e-4


# ----------------------------------------------------------------------------------------------
# PyTorch references

class TBagBottleneck(tnn.Module):
    """Brendel & Bethge's BagNet block: valid convs, residual cropped at the bottom-right."""

    def __init__(self, inplanes, planes, stride, kernel):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, kernel, stride, 0, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = tnn.Sequential(
                tnn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                tnn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        r = x if self.downsample is None else self.downsample(x)
        diff = r.size(-1) - out.size(-1)
        if diff:
            r = r[:, :, :-diff, :-diff]
        return F.relu(out + r)


class TBagNet(tnn.Module):
    def __init__(self, kernel3, num_classes, layers=(3, 4, 6, 3), strides=(2, 2, 2, 1)):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 1, 1, 0, bias=False)
        self.conv2 = tnn.Conv2d(64, 64, 3, 1, 0, bias=False)
        self.bn1 = tnn.BatchNorm2d(64, momentum=0.001)
        inplanes = 64
        for i, (n, s, k3) in enumerate(zip(layers, strides, kernel3)):
            blocks = []
            for j in range(n):
                blocks.append(TBagBottleneck(inplanes, 64 * 2 ** i, s if j == 0 else 1,
                                             3 if j < k3 else 1))
                inplanes = 64 * 2 ** i * 4
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.fc = tnn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv2(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# torchvision vgg.py's configuration "D" (VGG-16), also in the paper's vgg_fconv.py
VGG16_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M"]


class TVGG(tnn.Module):
    """torchvision ``vgg.py``'s VGG-16 without BatchNorm (``make_layers(cfgs["D"])``, adaptive
    7x7 average pool, 3-layer classifier); ``pad=2`` is ``full_conv/Exp3_image_shifts/
    vgg_fconv.py`` (every 3x3 padded 2). ``width`` replaces the classifier's 4096."""

    def __init__(self, num_classes, width, pad):
        super().__init__()
        layers, c = [], 3
        for v in VGG16_D:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                layers += [tnn.Conv2d(c, v, 3, padding=pad), tnn.ReLU()]
                c = v
        self.features = tnn.Sequential(*layers)
        self.classifier = tnn.Sequential(
            tnn.Linear(512 * 49, width), tnn.ReLU(), tnn.Dropout(),
            tnn.Linear(width, width), tnn.ReLU(), tnn.Dropout(), tnn.Linear(width, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 7)
        return self.classifier(torch.flatten(x, 1))


class TConvNet(tnn.Module):
    """The toy nets: bias-free convs + ReLU, global max pool, linear head ``fc``."""

    def __init__(self, c_in, widths, strides, k, pad, mode="zeros"):
        super().__init__()
        for i, (c, s) in enumerate(zip(widths, strides)):
            setattr(self, f"conv{i + 1}", tnn.Conv2d(c_in, c, k, s, pad, bias=False,
                                                     padding_mode=mode))
            c_in = c
        self.n = len(widths)
        self.fc = tnn.Linear(c_in, 2)

    def forward(self, x):
        for i in range(self.n):
            x = F.relu(getattr(self, f"conv{i + 1}")(x))
        return self.fc(torch.amax(x, dim=(2, 3)))


def randomize(net, seed):
    """Random non-trivial BatchNorm affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return net


# ----------------------------------------------------------------------------------------------
# Comparison

def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _inputs(net, size, batch, seed):
    x = np.random.default_rng(seed).standard_normal((batch, 3, size, size))
    return x[:, :next(net.parameters()).shape[1]]


def check_eval32(net, name, kwargs, size, batch=2, seed=0):
    """float32 eval-mode logits (the pretrained-weights use) within REL_TOL."""
    x = _inputs(net, size, batch, seed).astype(np.float32)
    model = models.get(name, **kwargs)
    variables = load_torch(net.state_dict(), name, **kwargs)
    with torch.no_grad():
        ref = net.float().eval()(torch.from_numpy(x)).numpy()
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x.transpose(0, 2, 3, 1))
    err = rel_err(out, ref)
    assert err < REL_TOL, err
    return err


def check_parity(net, name, kwargs, size, batch=8, seed=0, train=True):
    """float32: eval logits, train-mode logits and updated running statistics, in one jit.

    Train-mode BatchNorm on small maps amplifies float32 rounding (torch float32 itself is
    ~7e-5 from torch float64 for ResNet-50 at 64 px, batch 4), so the batch holds 8 images.
    """
    x = _inputs(net, size, batch, seed).astype(np.float32)
    model = models.get(name, **kwargs)
    variables = load_torch(net.state_dict(), name, **kwargs)

    @jax.jit
    def both(v, x):
        ev = model.apply(v, x, train=False)
        if not train:
            return ev, None, None
        tr, new = model.apply(v, x, train=True, mutable=["batch_stats"])
        return ev, tr, new["batch_stats"]

    ev, tr, new = both(variables, x.transpose(0, 2, 3, 1))
    xt = torch.from_numpy(x)
    with torch.no_grad():
        ref_e = net.eval()(xt).numpy()
        errs = {"eval": rel_err(ev, ref_e)}
        if not train:  # eval only (the train-mode BatchNorm is the ResNets' and BagNet's)
            assert errs["eval"] < REL_TOL, errs
            return errs
        ref_t = net.train()(xt).numpy()
    errs["train"] = rel_err(tr, ref_t)
    want = traverse_util.flatten_dict(load_torch(net.state_dict(), name, **kwargs)["batch_stats"])
    got = traverse_util.flatten_dict(new)
    old = traverse_util.flatten_dict(variables["batch_stats"])
    assert want.keys() == got.keys()
    errs["stats"] = max(rel_err(got[k], want[k]) for k in want)
    # The statistics really moved (so the comparison above is not vacuous).
    assert max(rel_err(got[k], old[k]) for k in want) > 1e-3
    assert max(errs.values()) < REL_TOL, errs
    return errs


# ----------------------------------------------------------------------------------------------
# Tests

@pytest.mark.parametrize("padding,pad", [("same", 2), ("full", 4)])
def test_rook_net_parity(padding, pad):
    torch.manual_seed(0)
    net = TConvNet(1, (1,), (1,), 5, pad)
    check_eval32(net, "rook_net", dict(padding=padding), 32)


@pytest.mark.parametrize("padding,fill,pad,mode", [
    ("valid", "zeros", 0, "zeros"), ("same", "zeros", 1, "zeros"),
    ("same", "circular", 1, "circular"), ("same", "reflect", 1, "reflect"),
    ("same", "replicate", 1, "replicate"), ("full", "zeros", 2, "zeros")])
def test_red_green_net_parity(padding, fill, pad, mode):
    torch.manual_seed(1)
    net = TConvNet(3, (32, 32, 64, 64), (1, 2, 2, 2), 3, pad, mode)
    check_eval32(net, "red_green_net", dict(padding=padding, fill=fill), 32)


def _resnet(depth, padding, pool="max", **kwargs):
    torch.manual_seed(depth)
    net = torch_nets.resnet(depth, padding, pool, num_classes=10, **kwargs)
    return randomize(net, depth)


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("padding", ["same", "full"])
def test_resnet_parity(depth, padding):
    # Train-mode BatchNorm is checked on ResNet-18 (both variants); ResNet-50 in eval mode.
    train = depth == 18
    errs = check_parity(_resnet(depth, padding), f"resnet{depth}",
                        dict(padding=padding, num_classes=10), 64, train=train)
    print(f"resnet{depth} {padding}", errs)


@pytest.mark.parametrize("padding", ["same", "full"])
def test_resnet18_blur_parity(padding):
    # SPEC E3's S+BlurPool (models_lpf: blur zero-padded by (f-1)//2, ceil((f-1)/2)) and
    # F+BlurPool (models_fconv_lpf: zero-padded by f-1), loaded from the *_lpf state dicts;
    # train-mode BatchNorm and running statistics on the F-Conv one.
    errs = check_parity(_resnet(18, padding, "blur"), "resnet18",
                        dict(padding=padding, pool="blur", num_classes=10), 64,
                        train=padding == "full")
    print(f"resnet18 {padding}+blur", errs)


@pytest.mark.parametrize("depth,padding,size,batch", [
    (34, "same", 64, 2), (34, "full", 64, 2), (101, "same", 32, 1), (101, "full", 32, 1)])
def test_deep_resnet_eval_parity(depth, padding, size, batch):
    errs = check_parity(_resnet(depth, padding), f"resnet{depth}",
                        dict(padding=padding, num_classes=10), size, batch=batch, train=False)
    print(f"resnet{depth} {padding}", errs)


def test_densenet121_parity():
    torch.manual_seed(3)
    print("densenet121", check_parity(randomize(torch_nets.DenseNet121(10), 3), "densenet121",
                                      dict(num_classes=10), 64, train=False))


@pytest.mark.parametrize("name,kernel3,size", [
    ("bagnet9", (1, 1, 0, 0), 32), ("bagnet17", (1, 1, 1, 0), 32), ("bagnet33", (1, 1, 1, 1), 64)])
def test_bagnet_parity(name, kernel3, size):
    torch.manual_seed(4)
    print(name, check_parity(randomize(TBagNet(kernel3, 10), 4), name, dict(num_classes=10),
                             size, train=False))


def test_bagnet_train_parity_one_block_per_stage():
    # Train mode (incl. the stem BatchNorm's PyTorch momentum 0.001) on a shallow BagNet-33.
    torch.manual_seed(6)
    net = randomize(TBagNet((1, 1, 1, 1), 10, layers=(1, 1, 1, 1)), 6)
    print("bagnet33 (1,1,1,1)", check_parity(net, "bagnet33", dict(
        num_classes=10, stage_sizes=(1, 1, 1, 1)), 48))


@pytest.mark.parametrize("padding,pad", [("same", 1), ("full", 2)])
def test_vgg16_parity(padding, pad):
    torch.manual_seed(5)
    net = TVGG(10, 32, pad)
    kwargs = dict(padding=padding, num_classes=10, classifier_width=32)
    print("vgg16", padding, check_eval32(net, "vgg16", kwargs, 32))


# ----------------------------------------------------------------------------------------------
# float64: exact agreement, and the *_lpf checkpoints' layout

def check_eval64(net, name, kwargs, size, batch=2, seed=0):
    """float64 eval-mode logits (float64 out of jaxeq too) within 1e-12 relative."""
    x = _inputs(net, size, batch, seed)
    kwargs = dict(kwargs, dtype=jnp.float64, param_dtype=jnp.float64)
    model = models.get(name, **kwargs)
    variables = load_torch(net.state_dict(), name, **kwargs)
    with torch.no_grad():
        ref = net.double().eval()(torch.from_numpy(x)).numpy()
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x.transpose(0, 2, 3, 1))
    assert out.dtype == jnp.float64
    err = rel_err(out, ref)
    assert err < 1e-12, err
    return err


# (depth, padding, pool, torch_nets.resnet kwargs, extra jaxeq kwargs, input size). Narrow nets
# where F-Conv pads put XLA:CPU's float64 convolutions on their slow generic path.
FLOAT64_CASES = [
    (18, "same", "max", {}, {}, 32),
    (18, "full", "max", {"width": 16}, {"width": 16}, 32),
    (50, "full", "max", {"width": 16}, {"width": 16}, 32),
    # the paper's S+Blur / F+Blur (zero-padded blur), from the *_lpf state-dict layout
    (18, "same", "blur", {}, {}, 32),
    (18, "full", "blur", {"width": 16}, {"width": 16}, 32),
    (50, "same", "blur", {"width": 16}, {"width": 16}, 32),
    # an even filter: S+Blur pads (f-1)//2 before and ceil((f-1)/2) after
    (18, "same", "blur", {"filter_size": 2, "width": 16}, {"blur_filter_size": 2, "width": 16},
     32),
    # Zhang's antialiased-cnns BlurPool: reflect padding, filter 4 (a reflect pad of 2 needs
    # maps of at least 3 pixels, so a larger input)
    (18, "same", "blur", {"filter_size": 4, "pad_type": "reflect", "width": 16},
     {"blur_filter_size": 4, "blur_fill": "reflect", "width": 16}, 64),
]


@pytest.mark.parametrize("depth,padding,pool,tkw,jkw,size", FLOAT64_CASES)
def test_resnet_float64_forward_parity(depth, padding, pool, tkw, jkw, size, x64):
    net = _resnet(depth, padding, pool, **tkw)
    err = check_eval64(net, f"resnet{depth}",
                       dict(padding=padding, pool=pool, num_classes=10, **jkw), size)
    print(f"resnet{depth} {padding} {pool} {tkw}", err)


def test_lpf_blur_fill_matters(x64):
    """The default (zeros) and Zhang's reflect blur give different nets: a reflect-trained
    reference does not match the zero-filled jaxeq model."""
    net = _resnet(18, "same", "blur", pad_type="reflect", width=16)
    with pytest.raises(AssertionError):
        check_eval64(net, "resnet18", dict(pool="blur", num_classes=10, width=16), 32)


def test_resnet18_4qi_stem_pool_matches_torch(x64):
    """The 4QI ResNet-18 (full_conv/Exp1_image_boundary/QI_location.py: torchvision's
    MaxPool2d(3, 2, 1) with ``kernel_size = 2``, global max pool, 2 classes) on the 120x120
    canvas: the stem output (shape and values) and the logits."""
    torch.manual_seed(11)
    net = randomize(torch_nets.ResNet(18, num_classes=2, stem_pool=(2, 2, 1)), 11).double()
    net.avgpool = tnn.AdaptiveMaxPool2d(1)
    kwargs = dict(num_classes=2, global_pool="max", stem_pool_kernel=2, stem_pool_padding=1,
                  dtype=jnp.float64, param_dtype=jnp.float64)
    model = models.get("resnet18", **kwargs)
    variables = load_torch(net.state_dict(), "resnet18", **kwargs)
    x = np.random.default_rng(11).standard_normal((2, 3, 120, 120))
    with torch.no_grad():
        xt = torch.from_numpy(x)
        stem, ref = net.eval().stem(xt).numpy(), net(xt).numpy()
    out, inter = jax.jit(lambda v, x: model.apply(v, x, train=False, capture_intermediates=True,
                                                  mutable=["intermediates"]))(
        variables, x.transpose(0, 2, 3, 1))
    got = inter["intermediates"]["maxpool"]["__call__"][0]
    assert stem.shape[2:] == (31, 31) and got.shape == (2, 31, 31, 64)
    errs = {"stem": rel_err(got, stem.transpose(0, 2, 3, 1)), "logits": rel_err(out, ref)}
    print("4QI resnet18", errs)
    assert max(errs.values()) < 1e-12, errs
    assert model.feature_strides() == models.get("resnet18").feature_strides()
