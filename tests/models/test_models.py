"""Model registry, parameter counts, F-Conv shapes, feature strides, gradients and dtypes.

Shapes and counts use ``jax.eval_shape`` (no compilation); gradients use reduced-depth
configurations of each family so the suite stays fast.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import jaxeq as jq
from jaxeq import models

KEY = jax.random.PRNGKey(0)
CONTRACT_NAMES = ["rook_net", "red_green_net", "resnet18", "resnet34", "resnet50", "resnet101",
                  "densenet121", "bagnet9", "bagnet17", "bagnet33", "vgg16"]


def abstract_init(model, shape, capture=False):
    return jax.eval_shape(lambda: model.init(KEY, jnp.zeros(shape), train=False,
                                             capture_intermediates=capture))


def numpy_init(model, shape, seed=0):
    """Variables from a seeded numpy generator (fan-in scaled kernels, identity BatchNorm).

    ``model.init`` compiles one RNG program per parameter, which costs seconds on XLA:CPU;
    gradient tests only need sensible values.
    """
    rng = np.random.default_rng(seed)
    tree = traverse_util.flatten_dict(abstract_init(model, shape))
    out = {}
    for path, a in tree.items():
        if path[-1] in ("kernel",):
            fan_in = math.prod(a.shape[:-1])
            out[path] = jnp.asarray(rng.standard_normal(a.shape) * np.sqrt(2.0 / fan_in), a.dtype)
        elif path[-1] in ("scale", "var"):
            out[path] = jnp.ones(a.shape, a.dtype)
        else:
            out[path] = jnp.asarray(0.1 * rng.standard_normal(a.shape), a.dtype)
    return traverse_util.unflatten_dict(out)


def n_params(variables):
    return sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(variables["params"]))


def intermediate_shapes(model, shape):
    flat = traverse_util.flatten_dict(abstract_init(model, shape, True)["intermediates"], sep="/")
    return {k[:-len("/__call__")]: v[0].shape for k, v in flat.items() if k.endswith("/__call__")}


def test_registry_names_and_errors():
    assert set(CONTRACT_NAMES) <= set(models.names())
    with pytest.raises(ValueError, match="resnet18"):
        models.get("resnet19")
    with pytest.raises(ValueError, match="padding"):
        models.get("resnet18", padding="zero")
    with pytest.raises(ValueError, match="fill"):
        models.get("resnet18", fill="mirror")
    with pytest.raises(ValueError, match="pool"):
        models.get("resnet18", pool="avg")
    with pytest.raises(ValueError, match="global_pool"):
        models.get("densenet121", global_pool="sum")
    with pytest.raises(ValueError, match="num_classes"):
        models.get("rook_net", num_classes=0)
    with pytest.raises(ValueError, match="dtype"):
        models.get("vgg16", dtype="int8")
    with pytest.raises(TypeError, match="resnet18"):
        models.get("resnet18", nonsense=1)


@pytest.mark.parametrize("name,count", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("resnet101", 44_549_160), ("densenet121", 7_978_856), ("vgg16", 138_357_544)])
def test_parameter_counts_equal_torchvision_and_full_has_same_tree(name, count):
    shape = models.example_input_shape(name)
    same = abstract_init(models.get(name), shape)
    assert n_params(same) == count
    full = abstract_init(models.get(name, padding="full"), shape)
    to_shapes = lambda v: jax.tree_util.tree_map(lambda a: a.shape, v)  # noqa: E731
    assert to_shapes(full) == to_shapes(same)
    assert "head" in same["params"]


def test_toy_nets_follow_spec():
    rook = abstract_init(models.get("rook_net"), (1, 32, 32, 1))["params"]
    assert rook["conv1"] == {"kernel": jax.ShapeDtypeStruct((5, 5, 1, 1), jnp.float32)}
    assert rook["head"]["kernel"].shape == (1, 2)
    rg = abstract_init(models.get("red_green_net"), (1, 32, 32, 3))["params"]
    assert [rg[f"conv{i}"]["kernel"].shape for i in range(1, 5)] == \
        [(3, 3, 3, 32), (3, 3, 32, 32), (3, 3, 32, 64), (3, 3, 64, 64)]
    assert all(set(rg[f"conv{i}"]) == {"kernel"} for i in range(1, 5))  # no bias
    assert rg["head"]["kernel"].shape == (64, 2)
    shapes = intermediate_shapes(models.get("red_green_net", padding="full"), (1, 32, 32, 3))
    assert [shapes[f"conv{i}"][1] for i in range(1, 5)] == [34, 18, 10, 6]


@pytest.mark.parametrize("name,sizes", [
    ("resnet18", [115, 57, 65, 40, 27, 21]), ("resnet50", [115, 57, 63, 39, 31, 21])])
def test_full_resnet_spatial_sizes_at_224(name, sizes):
    model = models.get(name, padding="full")
    shapes = intermediate_shapes(model, (1, 224, 224, 3))
    last = [f"layer{i + 1}_{n - 1}" for i, n in enumerate(model.stage_sizes)]
    assert [shapes[k][1] for k in ["conv1", "maxpool"] + last] == sizes
    assert all(v[1] == v[2] for v in shapes.values() if len(v) == 4)


def test_same_resnet_ends_at_7_and_blur_full_variant_shapes():
    shapes = intermediate_shapes(models.get("resnet18"), (1, 224, 224, 3))
    assert shapes["layer4_1"][1:3] == (7, 7)
    shapes = intermediate_shapes(models.get("resnet18", padding="full", pool="blur"),
                                 (1, 224, 224, 3))
    # stem max-pool kernel 2 stride 1, then the full-padded blur (pad 2) at stride 2
    assert shapes["maxpool"][1] == 114 and shapes["maxpool_blur"][1] == 58


VARIANTS = [(name, {}) for name in CONTRACT_NAMES] + [
    ("resnet18", {"pool": "blur"}), ("resnet50", {"pool": "blur"})]


@pytest.mark.parametrize("name,kwargs", VARIANTS)
def test_feature_strides_name_real_paths_with_same_padding_sizes(name, kwargs):
    model = models.get(name, padding="same", **kwargs)
    strides = model.feature_strides()  # on the unbound module
    n = 64
    shapes = intermediate_shapes(model, (2, n, n, models.example_input_shape(name)[-1]))
    assert strides and set(strides) <= set(shapes)
    for path, s in strides.items():
        want = tuple(math.ceil(n / si) for si in s)
        if kwargs.get("pool") == "blur" and path == "maxpool":
            want = (n // 2 - 1,) * 2  # Zhang's unpadded kernel-2 stride-1 stem max-pool
        assert shapes[path][1:3] == want, path
    # every spatial output of a parameterised layer is listed
    spatial = {k for k, v in shapes.items() if len(v) == 4 and k.split("/")[-1] != "avgpool"}
    assert spatial == set(strides)


GRAD_CASES = [
    ("red_green_net", {"padding": "full", "fill": "circular"}, (2, 16, 16, 3)),
    ("ResNet", {"block": "basic", "stage_sizes": (1, 1, 1, 1), "padding": "full",
                "pool": "blur", "num_classes": 3}, (2, 32, 32, 3)),
    ("ResNet", {"block": "bottleneck", "stage_sizes": (1, 1, 1, 1), "padding": "valid",
                "global_pool": "max", "num_classes": 3}, (2, 96, 96, 3)),
    ("DenseNet", {"block_config": (1, 1, 1, 1), "padding": "full", "num_classes": 3},
     (2, 32, 32, 3)),
    ("BagNet", {"stage_sizes": (1, 1, 1, 1), "num_classes": 3}, (2, 40, 40, 3)),
    ("VGG", {"cfg": (8, "M", 8, "M"), "classifier_width": 8, "pool_size": 2, "num_classes": 3,
             "padding": "full"}, (2, 16, 16, 3)),
]


@pytest.mark.parametrize("name,kwargs,shape", GRAD_CASES)
def test_jit_train_step_gradients_are_finite(name, kwargs, shape):
    model = getattr(models, name)(**kwargs) if name[0].isupper() else models.get(name, **kwargs)
    x = jax.random.normal(KEY, shape)
    y = jnp.arange(shape[0]) % 2
    variables = numpy_init(model, shape)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    @jax.jit
    def grads(params, x):
        def loss(p):
            kw = dict(train=True, rngs={"dropout": KEY})
            if rest:
                logits, _ = model.apply({"params": p, **rest}, x, mutable=list(rest), **kw)
            else:
                logits = model.apply({"params": p}, x, **kw)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
        return jax.value_and_grad(loss)(params)

    value, g = grads(params, x)
    assert np.isfinite(float(value))
    leaves = jax.tree_util.tree_leaves(g)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in leaves)
    assert any(float(jnp.max(jnp.abs(a))) > 0 for a in leaves)
    assert float(jnp.max(jnp.abs(g["head"]["kernel"]))) > 0


def test_bfloat16_compute_keeps_float32_params_and_logits():
    kwargs = dict(block="basic", stage_sizes=(1, 1, 1, 1), num_classes=4)
    x = jax.random.normal(KEY, (2, 32, 32, 3))
    m32, m16 = models.ResNet(**kwargs), models.ResNet(dtype="bfloat16", **kwargs)
    v = numpy_init(m32, x.shape)
    shapes = abstract_init(m16, x.shape)
    assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(shapes))
    out16 = jax.jit(lambda v, x: m16.apply(v, x, train=False))(v, x)
    out32 = jax.jit(lambda v, x: m32.apply(v, x, train=False))(v, x)
    assert out16.dtype == jnp.float32
    err = float(jnp.max(jnp.abs(out16 - out32)) / jnp.max(jnp.abs(out32)))
    assert 0 < err < 0.05


def _total_stride(model, ndim):
    strides = np.array([tuple(s) for s in model.feature_strides().values()]).reshape(-1, ndim)
    return tuple(int(v) for v in np.lcm.reduce(strides, axis=0))


# Layers the padding switch leaves unpadded: HardNet's 8x8 head covers its whole 8x8 map.
UNPADDED_LAYERS = {"hardnet": {"head", "head_bn"}}


@pytest.mark.slow
@pytest.mark.parametrize("name", models.names())
def test_every_registered_model_jits_has_finite_gradients_and_a_layerwise_report(name):
    """Each registry entry, full depth, at its small example size: a jitted loss gradient is
    finite, and layerwise_equivariance runs on it. Built S-Conv circular, every stage's map is
    then exactly equivariant to rolls by multiples of the net's total stride."""
    model = models.get(name, padding="same", fill="circular", num_classes=3)
    shape = models.example_input_shape(name)
    ndim = len(shape) - 2
    total = _total_stride(model, ndim)
    # every spatial size a multiple of the total stride, so a roll is defined at every layer
    shape = (shape[0], *(-(-d // t) * t for d, t in zip(shape[1:-1], total)), shape[-1])
    variables = numpy_init(model, shape)
    rest = {k: v for k, v in variables.items() if k != "params"}
    x = jax.random.normal(KEY, shape)

    @jax.jit
    def loss_and_grads(params):
        def loss(p):
            logits, _ = model.apply({"params": p, **rest}, x, train=True, mutable=list(rest),
                                    rngs={"dropout": KEY})
            return -jnp.mean(jax.nn.log_softmax(logits)[:, 0])
        return jax.value_and_grad(loss)(params)

    value, grads = loss_and_grads(variables["params"])
    assert np.isfinite(float(value))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))

    shifts = np.diag(total).astype(np.int32)  # one roll per spatial axis, by the total stride
    rows = jq.layerwise_equivariance(model, variables, x, shifts, action="roll")
    measured = {r["path"].split("#")[0] for r in rows if r["kind"] == "equivariant"}
    assert measured == set(model.feature_strides()), name
    unswitched = UNPADDED_LAYERS.get(name, set())
    worst = max((r["max"], r["path"]) for r in rows
                if r["kind"] == "equivariant" and r["path"].split("#")[0] not in unswitched)
    assert worst[0] < 1e-4, (name, worst)
    if unswitched:  # a valid conv over the whole map: a roll changes its output
        assert max(r["max"] for r in rows if r["path"].split("#")[0] in unswitched) > 1e-2


def test_stem_pool_padding_is_pytorch_maxpool_padding():
    # The 4QI ResNet-18 stem: torchvision's MaxPool2d(3, 2, 1) with kernel 2 -> k2 s2 p1.
    model = models.get("resnet18", stem_pool_kernel=2, stem_pool_padding=1)
    shapes = intermediate_shapes(model, (1, 120, 120, 3))
    assert shapes["conv1"][1] == 60 and shapes["maxpool"][1:3] == (31, 31)  # (60 + 2 - 2)//2 + 1
    assert intermediate_shapes(models.get("resnet18", stem_pool_kernel=2),
                               (1, 120, 120, 3))["maxpool"][1] == 30  # "same": pads (0, 1)
    assert model.feature_strides() == models.get("resnet18").feature_strides()
    for bad in (2, -1, 1.0, True, "1"):
        with pytest.raises(ValueError, match="stem_pool_padding"):
            models.get("resnet18", stem_pool_kernel=2, stem_pool_padding=bad)
    # The padding is -inf (PyTorch's): a pooled map of negative values never shows a zero.
    pool = models.get("resnet18", stem_pool_kernel=2, stem_pool_padding=1)
    k, s, p, f = pool._stem_pool()
    y = jq.max_pool(-jnp.ones((1, 4, 4, 1)), k, stride=s, padding=p, fill=f)
    assert y.shape == (1, 3, 3, 1) and bool(jnp.all(y == -1))


def test_blur_fill_defaults_to_the_model_fill_zeros():
    """The paper's S+BlurPool pads its blur with zeros (official Downsample pad_type='zero');
    Zhang's reflect is ``blur_fill="reflect"``."""
    kw = dict(block="basic", stage_sizes=(1, 1), width=4, pool="blur", num_classes=3)
    x = jax.random.normal(KEY, (2, 16, 16, 3))
    base = models.ResNet(**kw)
    v = numpy_init(base, x.shape)
    run = lambda m: m.apply(v, x, train=False)  # noqa: E731
    out = run(base)
    np.testing.assert_array_equal(out, run(models.ResNet(blur_fill="zeros", **kw)))
    assert float(jnp.max(jnp.abs(out - run(models.ResNet(blur_fill="reflect", **kw))))) > 1e-6
    with pytest.raises(ValueError, match="blur_fill"):
        models.ResNet(blur_fill="reflection", **kw)


def test_float64_models_are_float64_end_to_end(x64):
    """Logits are promoted, never demoted: float64 compute gives float64 logits and float64
    BatchNorm statistics, which keep their dtype through a train step."""
    kw = dict(block="basic", stage_sizes=(1, 1), width=4, num_classes=3)
    x = jax.random.normal(KEY, (2, 16, 16, 3), jnp.float64)
    for param_dtype in (jnp.float64, jnp.float32):
        model = models.ResNet(dtype=jnp.float64, param_dtype=param_dtype, **kw)
        v = numpy_init(model, x.shape)
        assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(v["batch_stats"]))
        logits, new = model.apply(v, x, train=True, mutable=["batch_stats"])
        assert logits.dtype == jnp.float64
        assert jax.tree.map(lambda a: a.dtype, new["batch_stats"]) == \
            jax.tree.map(lambda a: a.dtype, v["batch_stats"])
    half = models.ResNet(dtype=jnp.float16, **kw)
    assert half.apply(numpy_init(half, x.shape), x, train=False).dtype == jnp.float32


def test_an_nchw_input_to_an_rgb_model_is_refused_in_one_line():
    model = models.get("resnet18", num_classes=10)
    v = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match=r"^x must have shape \(N, \*spatial, C\) with C=3, the "
                                         r"channels 'conv1' was built for; got shape "
                                         r"\(1, 3, 32, 32\) \(an NCHW array\? move the channel "
                                         r"axis last\)"):
        model.apply(v, jnp.zeros((1, 3, 32, 32)))
