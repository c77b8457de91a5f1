"""The explicit model protocols of layerwise_equivariance: chain elements that declare their
stride (jq.layer, partial keywords, jaxeq ops' own defaults), flax modules with
feature_strides(), and the TypeError for anything else."""
import inspect
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq.analysis import StridedModule
from jaxeq.compose import DEFAULT_STRIDES, Chain, Layer


def _subsample(v):
    return v[:, ::2, ::2, :]


@pytest.fixture
def x():
    return jnp.asarray(np.random.default_rng(0).normal(size=(2, 12, 12, 2)), jnp.float32)


@pytest.fixture
def w():
    return jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 2, 3)), jnp.float32)


def test_explicit_layer_stride_is_measured_at_that_stride(x, w):
    net = jq.chain(partial(jq.conv, kernel=w, fill="circular"),
                   jq.layer(_subsample, stride=2, name="sub"), jq.global_avg_pool)
    assert [el.name for el in net.layers] == ["conv", "sub", "global_avg_pool"]
    shifts = jq.shift_grid(2)
    rows = {r["path"]: r for r in jq.layerwise_equivariance(net, None, x, shifts)}
    assert list(rows) == ["0:conv", "1:sub", "2:global_avg_pool"]
    sub = rows["1:sub"]
    assert sub["stride"] == (2, 2) and sub["note"] == "" and sub["kind"] == "equivariant"
    assert sub["n_shifts"] == 9  # the even shifts of [-2, 2]^2
    assert sub["max"] < 1e-5  # circular conv then exact subsampling: equivariant on 2Z^2
    # the same function without a declared stride is measured at 1 and says so
    plain = jq.layerwise_equivariance(jq.chain(_subsample), None, x, shifts)
    assert plain[0]["stride"] == (1, 1) and "assumed 1" in plain[0]["note"]


def test_declared_stride_rules(w):
    assert jq.layer(partial(jq.conv, kernel=w, stride=2)).stride == 2
    assert jq.layer(partial(jq.conv, kernel=w)).stride == 1
    assert jq.layer(partial(jq.max_pool, window=3)).stride == 3
    assert jq.layer(partial(jq.max_pool, window=3, stride=1)).stride == 1
    assert jq.layer(partial(jq.blur_pool, fill="circular")).stride == 2
    assert jq.layer(_subsample).stride is None
    assert jq.layer(partial(_subsample)).stride is None
    assert jq.layer(_subsample, stride=(1, 2)).stride == (1, 2)
    assert jq.layer(partial(jq.conv, kernel=w), stride=4, name="c").stride == 4

    class Strided:
        stride = 2

        def __call__(self, v):
            return _subsample(v)

    assert jq.layer(Strided()).stride == 2


def test_default_strides_match_the_signatures():
    for fn, default in DEFAULT_STRIDES.items():
        param = inspect.signature(fn).parameters["stride"]
        if isinstance(default, str):  # the pools: stride None means the window
            assert param.default is None and default in inspect.signature(fn).parameters
        else:
            assert param.default == default, fn.__name__


def test_chain_keeps_plain_functions_and_layers(x, w):
    f = partial(jq.conv, kernel=w, fill="circular")
    net = jq.chain(f, jax.nn.relu, jq.layer(_subsample, stride=2))
    assert isinstance(net, Chain) and all(isinstance(el, Layer) for el in net.layers)
    assert net.fns == (f, jax.nn.relu, _subsample)
    np.testing.assert_allclose(net(x), _subsample(jax.nn.relu(f(x))))
    with pytest.raises(TypeError, match="callable"):
        jq.layer(3)


class _NoStrides(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Conv(2, (3, 3))(x)


def test_models_matching_no_protocol_raise_what_is_expected(x):
    for model in (object(), lambda v: v, _NoStrides()):
        with pytest.raises(TypeError) as err:
            jq.layerwise_equivariance(model, None, x, jq.shift_grid(1))
        message = str(err.value)
        assert "\n" not in message
        assert "jq.chain" in message and "feature_strides()" in message
        assert type(model).__name__ in message


def test_strided_module_protocol():
    class WithStrides(_NoStrides):
        def feature_strides(self):
            return {}

    assert isinstance(WithStrides(), StridedModule)
    assert not isinstance(_NoStrides(), StridedModule)
    assert not isinstance(jq.chain(_subsample), StridedModule)


class _StridedNet(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Conv(3, (3, 3), strides=2, padding="SAME")(x)

    def feature_strides(self):
        return {"Conv_0": (2, 2)}


def test_a_calls_notes_do_not_stay_with_the_cached_layer_specs():
    net = _StridedNet()
    x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 9, 9, 2)), jnp.float32)
    v = net.init(jax.random.PRNGKey(0), x)
    shifts = jq.shift_grid(1, step=2)
    rolled = {r["path"]: r for r in jq.layerwise_equivariance(net, v, x, shifts, action="roll")}
    assert rolled["Conv_0"]["kind"] == "skipped" and "roll not defined" in rolled["Conv_0"]["note"]
    moved = {r["path"]: r for r in jq.layerwise_equivariance(net, v, x, shifts,
                                                             action="translate")}
    assert moved["Conv_0"]["kind"] == "equivariant" and moved["Conv_0"]["note"] == ""
    assert moved["Conv_0"]["n_shifts"] == len(shifts)
