"""HardNet and the 3-D ResNets: parity with PyTorch references, counts, strides, gradients and
the F-Conv equivariance of the 3-D ResNet.

The references are written here from torch.nn layers after the official code of the paper
(github.com/oskyhn/CNNs-Without-Borders at commit 4fae1d8: HardNet.py / HardNet_fconv.py for
the S-Conv / F-Conv HardNet; Hara's models/resnet.py and the authors' resnet_fconv.py /
resnet_fconv_tem.py for the 3-D ResNets, shortcut B), not from jaxeq's code. Random weights
and BatchNorm statistics, converted with ``load_torch``; eval-mode outputs agree to 1e-4
relative in float32 and to rounding error (F64_TOL) in float64. Parameters of the gradient and
equivariance tests come from a seeded numpy generator (``model.init`` compiles one RNG program
per parameter: seconds on XLA:CPU).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import jaxeq as jq
from jaxeq import models
from jaxeq.models.resnet3d import FCONV_TEMPORAL
from jaxeq.weights import load_torch, torch_prefix
from tests.conftest import torch_or_skip

torch = torch_or_skip()
tnn = torch.nn
F = torch.nn.functional

REL_TOL = 1e-4
F64_TOL = 1e-12  # float64 parity: rounding error only (measured ~3e-16 .. 3e-15)
KEY = jax.random.PRNGKey(0)


# ----------------------------------------------------------------------------------------------
# PyTorch references

# Written from the official HardNet_fconv.py / HardNet.py (github.com/oskyhn/CNNs-Without-Borders
# at 4fae1d8, full_conv/Exp4_data_efficiency/patch_matching/code/): their HardNet class.
class THardNet(tnn.Module):
    """HardNet as the authors' code: ``features`` Sequential (six bias-free 3x3 convs padded
    ``pad``: 1 in HardNet.py, 2 in HardNet_fconv.py; affine-free BatchNorms; dropout; the
    unpadded 8x8 conv and its BatchNorm), per-patch input normalisation, the head's map
    flattened as ``view(N, -1)`` and L2-normalised."""

    def __init__(self, pad, dropout=0.3):
        super().__init__()
        layers, c = [], 1
        for out, stride in ((32, 1), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1)):
            layers += [tnn.Conv2d(c, out, 3, stride, pad, bias=False),
                       tnn.BatchNorm2d(out, affine=False), tnn.ReLU()]
            c = out
        layers += [tnn.Dropout(dropout), tnn.Conv2d(128, 128, 8, bias=False),
                   tnn.BatchNorm2d(128, affine=False)]
        self.features = tnn.Sequential(*layers)

    def forward(self, x):
        flat = x.reshape(x.size(0), -1)
        mean = flat.mean(1).detach()[:, None, None, None]
        std = (flat.std(1) + 1e-7).detach()[:, None, None, None]
        y = self.features((x - mean) / std)
        y = y.reshape(y.size(0), -1)
        return y / torch.sqrt(torch.sum(y * y, 1) + 1e-10)[:, None]


# 3-D ResNets, written from the official action-recognition models (same repository and
# commit, full_conv/Exp5_small_datasets/action_recognition/models/): Hara's resnet.py ("same"),
# resnet_fconv.py ("fconv", the paper's spatial F-Conv) and resnet_fconv_tem.py ("fconv_tem",
# the later spatio-temporal one), shortcut type B as opts.py's default.
# Per variant: 3x3x3 conv padding (T, H, W); stem stride and padding; the zero padding of the
# block input before the identity / the downsample shortcut, as (T, H, W) per side.
VARIANTS_3D = {
    "same": dict(pad3=(1, 1, 1), stem_stride=(1, 2, 2), stem_pad=(3, 3, 3),
                 basic_short=((0, 0, 0), (0, 0, 0)), bottle_short=((0, 0, 0), (0, 0, 0))),
    "fconv": dict(pad3=(1, 2, 2), stem_stride=(1, 2, 2), stem_pad=(3, 6, 6),
                  basic_short=((0, 2, 2), (0, 3, 3)), bottle_short=((0, 1, 1), (0, 1, 1))),
    "fconv_tem": dict(pad3=(2, 2, 2), stem_stride=(2, 2, 2), stem_pad=(6, 6, 6),
                      basic_short=((2, 2, 2), (3, 3, 3)), bottle_short=((1, 1, 1), (1, 1, 1))),
}


def _torch_pad(x, p):
    """Zero-pad (T, H, W) of an NCDHW tensor by ``p`` per side."""
    t, h, w = p
    return F.pad(x, (w, w, h, h, t, t)) if t or h or w else x


class TBasic3d(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, v):
        super().__init__()
        self.conv1 = tnn.Conv3d(inplanes, planes, 3, stride, v["pad3"], bias=False)
        self.bn1 = tnn.BatchNorm3d(planes)
        self.conv2 = tnn.Conv3d(planes, planes, 3, 1, v["pad3"], bias=False)
        self.bn2 = tnn.BatchNorm3d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = tnn.Sequential(tnn.Conv3d(inplanes, planes, 1, stride, bias=False),
                                             tnn.BatchNorm3d(planes))
        self.pad_id, self.pad_down = v["basic_short"]

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.downsample is None:
            r = _torch_pad(x, self.pad_id)
        else:
            r = self.downsample(_torch_pad(x, self.pad_down))
        return F.relu(out + r)


class TBottleneck3d(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, v):
        super().__init__()
        self.conv1 = tnn.Conv3d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm3d(planes)
        self.conv2 = tnn.Conv3d(planes, planes, 3, stride, v["pad3"], bias=False)
        self.bn2 = tnn.BatchNorm3d(planes)
        self.conv3 = tnn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm3d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = tnn.Sequential(
                tnn.Conv3d(inplanes, planes * 4, 1, stride, bias=False),
                tnn.BatchNorm3d(planes * 4))
        self.pad_id, self.pad_down = v["bottle_short"]

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is None:
            r = _torch_pad(x, self.pad_id)
        else:
            r = self.downsample(_torch_pad(x, self.pad_down))
        return F.relu(out + r)


class TResNet3d(tnn.Module):
    """The official 3-D ResNet of ``variant`` (a key of VARIANTS_3D): stem 7x7x7 conv, BN,
    ReLU, MaxPool3d(3, 2, 1) in every variant, four stages, global average pool, ``fc``.
    ``width`` thins the net (64 in the official files). ``temporal_fill`` "circular" pads T
    circularly (before each conv and the max-pool) instead of with zeros; only for variants
    whose shortcuts are not padded in T."""

    def __init__(self, block, layers, num_classes, variant="same", width=64,
                 temporal_fill="zeros"):
        super().__init__()
        v = VARIANTS_3D[variant]
        self.conv1 = tnn.Conv3d(3, width, 7, v["stem_stride"], v["stem_pad"], bias=False)
        self.bn1 = tnn.BatchNorm3d(width)
        self.maxpool = tnn.MaxPool3d(3, 2, 1)
        inplanes = width
        for i, n in enumerate(layers):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(inplanes, width * 2 ** i, stride, v))
                inplanes = width * 2 ** i * block.expansion
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.fc = tnn.Linear(inplanes, num_classes)
        if temporal_fill == "circular":  # pad T by hand, leave H, W to the layers' padding
            assert variant != "fconv_tem", "circular T only where shortcuts are not T-padded"
            for m in self.modules():
                if isinstance(m, (tnn.Conv3d, tnn.MaxPool3d)):
                    pad = m.padding if isinstance(m.padding, tuple) else (m.padding,) * 3
                    if pad[0]:
                        m.padding = (0,) + tuple(pad[1:])
                        m.register_forward_pre_hook(
                            lambda mod, inp, pt=pad[0]: F.pad(inp[0], (0, 0, 0, 0, pt, pt),
                                                              mode="circular"))

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool3d(x, 1), 1))


def torch_resnet3d(depth, num_classes=10, **kwargs):
    layers = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    return TResNet3d(TBasic3d if depth < 50 else TBottleneck3d, layers, num_classes, **kwargs)


def randomize(net, seed):
    """Random weights (kept) and random BatchNorm affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, tnn.modules.batchnorm._BatchNorm):
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return net.eval()


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def check_eval(net, name, kwargs, shape_ncx, seed=0, f64=False):
    """Eval-mode parity; ``shape_ncx`` is torch's (N, C, *spatial). ``f64``: both sides in
    float64 (torch ``.double()``, jaxeq ``dtype=param_dtype=float64`` under x64), to F64_TOL.
    Returns (jaxeq output, variables, relative error)."""
    x = np.random.default_rng(seed).standard_normal(shape_ncx)
    if f64:
        net, kwargs = net.double(), dict(kwargs, dtype=jnp.float64, param_dtype=jnp.float64)
    else:
        x = x.astype(np.float32)
    with jax.enable_x64(f64):
        model = models.get(name, **kwargs)
        variables = load_torch(net.state_dict(), name, input_shape=x.shape[:1] + x.shape[2:]
                               + x.shape[1:2], **kwargs)
        with torch.no_grad():
            ref = net.eval()(torch.from_numpy(x)).numpy()
        out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables,
                                                                   np.moveaxis(x, 1, -1))
        assert out.shape == ref.shape
        assert out.dtype == (np.float64 if f64 else np.float32)
        out = np.asarray(out)
    err = rel_err(out, ref)
    assert err < (F64_TOL if f64 else REL_TOL), err
    return out, variables, err


def n_params(tree):
    return sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(tree))


def abstract_init(model, shape, capture=False):
    return jax.eval_shape(lambda: model.init(KEY, jnp.zeros(shape), train=False,
                                             capture_intermediates=capture))


def numpy_init(model, shape, seed=0, bn_shift=True):
    """Seeded numpy variables: fan-in scaled kernels, BatchNorm scale and variance in
    [0.5, 1.5); BatchNorm bias and mean random (``bn_shift``) or zero."""
    rng = np.random.default_rng(seed)
    out = {}
    for path, a in traverse_util.flatten_dict(abstract_init(model, shape)).items():
        leaf = path[-1]
        if leaf == "kernel":
            v = rng.standard_normal(a.shape) * np.sqrt(2.0 / math.prod(a.shape[:-1]))
        elif leaf in ("scale", "var"):
            v = 0.5 + rng.random(a.shape)
        elif leaf == "mean" or (leaf == "bias" and path[1] != "head"):
            v = 0.1 * rng.standard_normal(a.shape) if bn_shift else np.zeros(a.shape)
        else:
            v = 0.1 * rng.standard_normal(a.shape)
        out[path] = jnp.asarray(v, a.dtype)
    return traverse_util.unflatten_dict(out)


# ----------------------------------------------------------------------------------------------
# HardNet

@pytest.mark.parametrize("padding,pad,dim", [("same", 1, 128), ("full", 2, 6272)])
def test_hardnet_float64_parity_with_the_official_hardnets(padding, pad, dim):
    # F-Conv at 32x32: the head's 7x7x128 map, flattened in torch's (C, H, W) order.
    torch.manual_seed(0)
    out, variables, _ = check_eval(randomize(THardNet(pad), 0), "hardnet",
                                   dict(padding=padding), (4, 1, 32, 32), f64=True)
    assert out.shape == (4, dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-9)  # eps 1e-10
    # Affine-free BatchNorms: no scale/bias anywhere, running statistics in every bn.
    assert set(variables["params"]) == {f"conv{i}" for i in range(1, 7)} | {"head"}
    assert set(variables["batch_stats"]) == {f"bn{i}" for i in range(1, 7)} | {"head_bn"}


def test_hardnet_float32_parity_full():
    torch.manual_seed(2)
    out, _, _ = check_eval(randomize(THardNet(2), 2), "hardnet", dict(padding="full"),
                           (2, 1, 32, 32), seed=2)
    assert out.shape == (2, 6272) and out.dtype == np.float32


def test_hardnet_init_is_orthogonal_with_gain_0_6():
    """The authors' weights_init: orthogonal(gain=0.6) on every conv, which have no biases.
    Torch makes each (out, fan_in) weight matrix orthonormal along its shorter side; here every
    kernel reshaped to (fan_in, out) must have Gram matrix 0.36 I on its shorter side."""
    model = models.get("hardnet", padding="full")
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 8, 8, 1)), train=False))(KEY)
    assert set(variables["params"]) == {f"conv{i}" for i in range(1, 7)} | {"head"}
    for name, p in variables["params"].items():
        assert set(p) == {"kernel"}, name
        m = np.asarray(p["kernel"], np.float64).reshape(-1, p["kernel"].shape[-1])
        gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
        np.testing.assert_allclose(gram, 0.36 * np.eye(len(gram)), atol=1e-5, err_msg=name)
        assert np.mean(np.abs(m) > 1e-7) > 0.99, name  # dense (random), not a padded identity
    for stats in variables["batch_stats"].values():
        assert np.all(stats["mean"] == 0) and np.all(stats["var"] == 1)


def test_hardnet_train_mode_parity_without_dropout():
    torch.manual_seed(1)
    net = randomize(THardNet(1, dropout=0.0), 1)
    kwargs = dict(dropout_rate=0.0)
    x = np.random.default_rng(1).standard_normal((8, 1, 32, 32)).astype(np.float32)
    model = models.get("hardnet", **kwargs)
    variables = load_torch(net.state_dict(), "hardnet", **kwargs)
    out, new = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, np.moveaxis(x, 1, -1))
    with torch.no_grad():
        ref = net.train()(torch.from_numpy(x)).numpy()
    assert rel_err(out, ref) < REL_TOL
    want = load_torch(net.state_dict(), "hardnet", **kwargs)["batch_stats"]
    for k in want:
        assert rel_err(new["batch_stats"][k]["var"], want[k]["var"]) < REL_TOL, k
        assert rel_err(new["batch_stats"][k]["mean"], want[k]["mean"]) < REL_TOL, k


def test_hardnet_shapes_names_and_errors():
    m = models.get("hardnet")
    v = abstract_init(m, (1, 32, 32, 1), capture=True)
    assert n_params(v["params"]) == 9 * (32 + 32 * 32 + 32 * 64 + 64 * 64 + 64 * 128
                                         + 128 * 128) + 64 * 128 * 128
    assert v["intermediates"]["head"]["__call__"][0].shape == (1, 1, 1, 128)
    assert v["intermediates"]["__call__"][0].shape == (1, 128)
    # F-Conv HardNet: same parameter tree; the 7x7x128 head map is the 6272-d descriptor.
    vf = abstract_init(models.get("hardnet", padding="full"), (3, 32, 32, 1), capture=True)
    assert jax.tree_util.tree_map(lambda a: a.shape, vf["params"]) == \
        jax.tree_util.tree_map(lambda a: a.shape, v["params"])
    assert vf["intermediates"]["head"]["__call__"][0].shape == (3, 7, 7, 128)
    assert vf["intermediates"]["__call__"][0].shape == (3, 6272)
    # valid needs >= 51 px before the unpadded 8x8 head
    assert abstract_init(models.get("hardnet", padding="valid"), (1, 51, 51, 1),
                         capture=True)["intermediates"]["head"]["__call__"][0].shape[1] == 1
    with pytest.raises(ValueError, match="kernel_size"):
        abstract_init(models.get("hardnet", padding="valid"), (1, 50, 50, 1))
    with pytest.raises(ValueError, match="dropout_rate"):
        models.get("hardnet", dropout_rate=1.0)
    with pytest.raises(ValueError, match="x must have shape"):
        abstract_init(m, (1, 4, 32, 32, 1))
    # feature_strides: every spatial output, sizes ceil(n / stride) (the 8x8 head unpadded)
    strides = m.feature_strides()
    flat = traverse_util.flatten_dict(abstract_init(m, (1, 64, 64, 1), True)["intermediates"],
                                      sep="/")
    shapes = {k[:-len("/__call__")]: a[0].shape for k, a in flat.items()}
    assert set(strides) == {k for k, a in shapes.items() if len(a) == 4}
    for path, s in strides.items():
        want = tuple(math.ceil(64 / si) - (7 if path.startswith("head") else 0) for si in s)
        assert shapes[path][1:3] == want, path
    assert torch_prefix("hardnet", ("head",)) == "features.19"
    assert torch_prefix("hardnet", ("bn6",)) == "features.16"


# ----------------------------------------------------------------------------------------------
# 3-D ResNets

def test_resnet3d_parameter_counts_equal_torch_reference():
    # Hara's ResNet-18 with 400 Kinetics classes; the paper's "33.2M" is with shortcut A
    # (no downsample convs); shortcut B adds 173,824.
    for depth, count in ((18, 33_409_104), (50, 47_018_576)):
        want = sum(p.numel() for p in torch_resnet3d(depth, num_classes=400).parameters())
        same = abstract_init(models.get(f"resnet3d_{depth}"), (1, 8, 32, 32, 3))
        full = abstract_init(models.get(f"resnet3d_{depth}", padding="full"), (1, 8, 32, 32, 3))
        assert n_params(same["params"]) == want == count
        shapes = lambda v: jax.tree_util.tree_map(lambda a: a.shape, v)  # noqa: E731
        assert shapes(full) == shapes(same)
        assert same["params"]["conv1"]["kernel"].shape == (7, 7, 7, 3, 64)


# (official variant, jaxeq kwargs): the paper's F-Conv is spatial only (the default meaning of
# padding="full"); the spatio-temporal file is FCONV_TEMPORAL.
JAXEQ_3D = {"same": {}, "fconv": {"padding": "full"}, "fconv_tem": FCONV_TEMPORAL}


@pytest.mark.parametrize("depth,variant,width,shape", [
    (18, "same", 16, (2, 3, 8, 32, 32)),
    (18, "fconv", 16, (1, 3, 8, 32, 32)),
    (18, "fconv_tem", 8, (1, 3, 8, 16, 16)),  # T grows too here: a smaller net
    (50, "same", 8, (1, 3, 8, 32, 32)),
    (50, "fconv", 8, (1, 3, 8, 16, 16)),
])
def test_resnet3d_float64_parity_with_the_official_models(depth, variant, width, shape):
    torch.manual_seed(depth)
    net = randomize(torch_resnet3d(depth, variant=variant, width=width), depth)
    check_eval(net, f"resnet3d_{depth}", dict(JAXEQ_3D[variant], width=width, num_classes=10),
               shape, f64=True)


def test_resnet3d_float32_parity_fconv():
    torch.manual_seed(3)
    net = randomize(torch_resnet3d(18, variant="fconv", width=8), 3)
    check_eval(net, "resnet3d_18", dict(padding="full", width=8, num_classes=10),
               (2, 3, 4, 16, 16))


def test_resnet3d_fconv_with_circular_temporal_fill_parity():
    # The paper's F-Conv (spatially full, zeros) with T padded circularly: per-group fills.
    torch.manual_seed(7)
    net = randomize(torch_resnet3d(18, variant="fconv", width=8, temporal_fill="circular"), 7)
    check_eval(net, "resnet3d_18", dict(padding="full", temporal_fill="circular", width=8,
                                        num_classes=10), (2, 3, 8, 20, 20), f64=True)


# Stage output sizes (T, H, W) at the authors' input, 16 frames of 112x112 (opts.py), as the
# reference networks above give them.
SIZES_3D = {
    "same": {"conv1": (16, 56, 56), "maxpool": (8, 28, 28), "layer1_1": (8, 28, 28),
             "layer2_1": (4, 14, 14), "layer3_1": (2, 7, 7), "layer4_1": (1, 4, 4)},
    "fconv": {"conv1": (16, 59, 59), "maxpool": (8, 30, 30), "layer1_1": (8, 38, 38),
              "layer2_1": (4, 26, 26), "layer3_1": (2, 20, 20), "layer4_1": (1, 17, 17)},
    "fconv_tem": {"conv1": (11, 59, 59), "maxpool": (6, 30, 30), "layer1_1": (14, 38, 38),
                  "layer2_1": (14, 26, 26), "layer3_1": (14, 20, 20),
                  "layer4_1": (14, 17, 17)},
}


@pytest.mark.parametrize("variant", sorted(SIZES_3D))
def test_resnet3d_output_sizes_at_16x112x112(variant):
    model = models.get("resnet3d_18", num_classes=101, **JAXEQ_3D[variant])
    v = abstract_init(model, (1, 16, 112, 112, 3), capture=True)["intermediates"]
    got = {k: v[k]["__call__"][0].shape[1:4] for k in SIZES_3D[variant]}
    assert got == SIZES_3D[variant]
    assert v["__call__"][0].shape == (1, 101)


def test_resnet3d_defaults_are_the_papers_spatial_fconv():
    m = models.get("resnet3d_18", padding="full")
    assert m.temporal_padding == "same" and m.temporal_stem_stride == 1
    assert m.feature_strides()["conv1"] == (1, 2, 2)
    tem = models.get("resnet3d_18", **FCONV_TEMPORAL)
    assert tem.feature_strides()["conv1"] == (2, 2, 2)
    assert tem.feature_strides()["maxpool"] == (4, 4, 4)
    assert tem.feature_strides()["layer4_1"] == (32, 32, 32)
    with pytest.raises(ValueError, match="temporal_stem_stride"):
        models.get("resnet3d_18", temporal_stem_stride=0)


@pytest.mark.parametrize("name,kwargs", [
    ("resnet3d_18", {}), ("resnet3d_50", {}),
    ("resnet3d_18", {"padding": "full"})])
def test_resnet3d_feature_strides_match_shapes(name, kwargs):
    model = models.get(name, **kwargs)
    strides = model.feature_strides()
    shape = (1, 16, 64, 64, 3)
    flat = traverse_util.flatten_dict(abstract_init(model, shape, True)["intermediates"],
                                      sep="/")
    shapes = {k[:-len("/__call__")]: v[0].shape for k, v in flat.items()}
    spatial = {k for k, v in shapes.items() if len(v) == 5}
    assert spatial == set(strides)
    assert strides["layer4_1"] == (16, 32, 32) and strides["conv1"] == (1, 2, 2)
    for path, s in strides.items():
        if kwargs.get("padding") == "full":  # T is "same": ceil(n / stride)
            assert shapes[path][1] == math.ceil(shape[1] / s[0]), path
        else:
            assert shapes[path][1:4] == tuple(math.ceil(n / si) for n, si in
                                              zip(shape[1:4], s)), path


def test_resnet3d_valid_crops_shortcuts_errors_and_torch_names():
    # valid in all dims: unpadded convs and stem pool (3/2), shortcuts cropped to the branch.
    model = models.ResNet3D(block="bottleneck", padding="valid", temporal_padding="valid",
                            stage_sizes=(1, 1), width=4)
    flat = abstract_init(model, (1, 32, 40, 40, 3), True)["intermediates"]
    assert flat["maxpool"]["__call__"][0].shape == (1, 12, 8, 8, 4)
    assert flat["layer2_0"]["__call__"][0].shape == (1, 4, 2, 2, 32)
    with pytest.raises(ValueError, match="temporal_padding"):
        models.get("resnet3d_18", temporal_padding="causal")
    with pytest.raises(ValueError, match="temporal_fill"):
        models.get("resnet3d_18", temporal_fill="mirror")
    with pytest.raises(ValueError, match="x must have shape"):
        abstract_init(models.get("resnet3d_18"), (1, 32, 32, 3))
    assert torch_prefix("resnet3d_18", ("layer2_0", "downsample_conv")) == \
        "layer2.0.downsample.0"
    assert torch_prefix("resnet3d_50", ("head",)) == "fc"


GRAD_CASES = [
    ("hardnet", {"padding": "full"}, (2, 32, 32, 1)),
    ("ResNet3D", {"padding": "full", "width": 8, "stage_sizes": (1, 1, 1, 1),
                  "num_classes": 3},
     (2, 8, 24, 24, 3)),
]


@pytest.mark.parametrize("name,kwargs,shape", GRAD_CASES)
def test_jit_train_step_gradients_are_finite(name, kwargs, shape):
    model = getattr(models, name)(**kwargs) if name[0].isupper() else models.get(name, **kwargs)
    x = jax.random.normal(KEY, shape)
    variables = numpy_init(model, shape)
    params, stats = variables["params"], variables["batch_stats"]

    @jax.jit
    def grads(params, x):
        def loss(p):
            out, _ = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                 mutable=["batch_stats"], rngs={"dropout": KEY})
            return jnp.sum(out[:, 0]) - jnp.sum(out[:, 1])
        return jax.value_and_grad(loss)(params)

    value, g = grads(params, x)
    assert np.isfinite(float(value))
    leaves = jax.tree_util.tree_leaves(g)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in leaves)
    assert float(jnp.max(jnp.abs(g["head"]["kernel"]))) > 0
    assert float(jnp.max(jnp.abs(g["conv1"]["kernel"]))) > 0


def _content_in_zero_canvas(shape, t, h, seed=0):
    """Random content in frames t..t+3 and rows h..h+7 of a zero (N, T, H, W, C) canvas."""
    x = np.zeros(shape, np.float32)
    x[:, t:t + 4, h:h + 8] = np.random.default_rng(seed).standard_normal(
        (shape[0], 4, 8) + shape[3:])
    return jnp.asarray(x)


# Content in a zero canvas, moved along T and H. Every BatchNorm maps 0 to 0 here (random
# scales and variances, zero bias and mean), so the zero background stays zero: a net that is
# full-zero along a dim is then exactly equivariant to shifts along it that are multiples of a
# layer's stride, while same-zero is not (its padding cuts the response of content that a
# receptive field sees near a border). The stem max-pool (3/2/1) covers every input pixel, so
# it keeps this. The paper's F-Conv (full in H, W only) is exact for H shifts, not T shifts.
EQ_SHAPE = (1, 24, 48, 4, 3)
EQ_SHIFTS = np.array([[0, 0, 0], [16, 0, 0], [0, 32, 0], [16, 32, 0]], np.int32)  # total stride


def _last_map_equivariance_errors(**kwargs):
    """equivariance_error of resnet3d_18's layer4 output for EQ_SHIFTS of content in a zero
    canvas."""
    x = _content_in_zero_canvas(EQ_SHAPE, 2, 4)
    model = models.get("resnet3d_18", width=8, num_classes=4, **kwargs)
    variables = numpy_init(model, EQ_SHAPE, bn_shift=False)

    def last_map(x):
        _, st = model.apply(variables, x, mutable=["intermediates"],
                            capture_intermediates=lambda m, _: m.name == "layer4_1")
        return st["intermediates"]["layer4_1"]["__call__"][0]

    return np.asarray(jq.equivariance_error(last_map, x, EQ_SHIFTS, action="translate",
                                            out_stride=model.feature_strides()["layer4_1"]))


def test_resnet3d_full_zero_is_translation_equivariant_same_is_not():
    full = _last_map_equivariance_errors(padding="full", temporal_padding="full")
    same = _last_map_equivariance_errors()
    assert np.max(full) < 1e-5, full
    assert np.min(same[1:]) > 0.05, same


def test_resnet3d_papers_spatial_fconv_is_equivariant_in_space_only():
    errs = _last_map_equivariance_errors(padding="full")
    assert errs[2] < 1e-5 and np.min(errs[[1, 3]]) > 0.05, errs


def test_layerwise_equivariance_runs_on_3d_model_and_full_is_exact_at_every_layer():
    model = models.ResNet3D(padding="full", temporal_padding="full", stage_sizes=(1, 1), width=4,
                            num_classes=4)
    x = _content_in_zero_canvas(EQ_SHAPE, 2, 4)
    shifts = np.array([[0, 0, 0], [4, 8, 0], [8, 16, 0], [12, 24, 0]], np.int32)
    rows = jq.layerwise_equivariance(model, numpy_init(model, EQ_SHAPE, bn_shift=False), x,
                                     shifts, action="translate")
    eq = [r for r in rows if r["kind"] == "equivariant"]
    assert {r["path"] for r in eq} == set(model.feature_strides())
    assert all(r["n_shifts"] == 4 for r in eq)
    assert max(r["max"] for r in eq) < 1e-5, [(r["path"], r["max"]) for r in eq]
