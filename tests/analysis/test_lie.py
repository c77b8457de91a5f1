"""The Lie derivative of translation: zero where the math says so, located at the border for a
zero-padded conv, equal to a finite difference of fractional shifts, and split over layers
into contributions that sum to the network's."""
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq.analysis.lie import lie_attribution, lie_derivative, lie_derivative_fd
from jaxeq.nn import Conv


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 16
    i = np.arange(n)
    # band-limited: integer frequencies well below Nyquist
    img = np.cos(2 * np.pi * (2 * i[:, None] + i[None, :]) / n) + \
        0.5 * np.sin(2 * np.pi * 3 * i / n)[None, :]
    x = jnp.asarray(np.stack([img, img.T], -1)[None], jnp.float32)
    w1 = jnp.asarray(rng.normal(size=(3, 3, 2, 3)) / 3, jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(3, 3, 3, 2)) / 3, jnp.float32)
    return x, w1, w2


def test_zero_for_circular_conv_on_bandlimited_input(data):
    x, w1, _ = data
    circ = lie_derivative(partial(jq.conv, kernel=w1, fill="circular"), x)
    same = lie_derivative(partial(jq.conv, kernel=w1), x)
    assert circ.per_axis.shape == (1, 2) and circ.norm.shape == (1,)
    assert np.max(circ.norm) < 1e-5 * np.max(same.norm) and np.min(same.per_axis) > 1e-2


def test_same_zero_conv_is_nonzero_at_the_border_only(data):
    x, w1, _ = data
    same = partial(jq.conv, kernel=w1)
    # translate's generator is local: the interior (2 px from the edge: the kernel radius
    # plus the central difference) is exactly zero
    loc = lie_derivative(same, x, action="translate", return_map=True).maps
    mag = np.abs(loc).sum(axis=(0, 1, 4))
    assert mag[2:-2, 2:-2].max() < 1e-5 and mag[[0, -1], :].min() > 1e-3
    # the spectral generator spreads the border jump, but most of it stays there
    spec = lie_derivative(same, x, action="roll", return_map=True).maps
    energy = np.square(spec).sum(axis=(0, 1, 4))
    border = energy.copy()
    border[2:-2, 2:-2] = 0
    assert border.sum() > 0.8 * energy.sum()
    assert energy[[0, -1], :].mean() > 20 * energy[4:-4, 4:-4].mean()


def test_agrees_with_finite_differences_of_fractional_shifts(x64, data):
    x, w1, w2 = (jnp.asarray(a, jnp.float64) for a in data)
    net = lambda v: jq.conv(jnp.tanh(jq.conv(v, w1)), w2, stride=2)  # noqa: E731
    exact = lie_derivative(net, x, out_stride=2, return_map=True).maps
    fd = lie_derivative_fd(net, x, h=1e-3, out_stride=2)
    np.testing.assert_allclose(fd, exact, atol=1e-5 * np.abs(exact).max())
    pooled = lambda v: jnp.mean(jnp.tanh(jq.conv(v, w1)), axis=(1, 2))  # noqa: E731
    inv = lie_derivative(pooled, x, return_map=True).maps
    assert inv.shape == (2, 1, 3)
    np.testing.assert_allclose(lie_derivative_fd(pooled, x, h=1e-3), inv,
                               atol=1e-6 * np.abs(inv).max() + 1e-12)


def test_chain_contributions_sum_to_the_total_and_name_the_culprit(data):
    x, w1, w2 = data
    layers = [partial(jq.conv, kernel=w1), partial(jq.conv, kernel=w2, fill="circular")]
    rows = lie_attribution(layers, None, x)
    assert [r["path"] for r in rows] == ["0:conv", "1:conv", "(total)"]
    total = lie_derivative(jq.chain(*layers), x, return_map=True).maps
    np.testing.assert_allclose(rows[-1]["contribution"], total, atol=1e-5)
    np.testing.assert_allclose(rows[0]["contribution"] + rows[1]["contribution"], total,
                               atol=1e-5)
    # a circular conv commutes with the spectral generator for any input: its own share is 0
    assert rows[1]["norm"][0] < 1e-5 * rows[0]["norm"][0]
    np.testing.assert_allclose(rows[0]["share"], 1.0, atol=1e-5)
    # zero-fill semantics: the same telescoping, with translate's local generator
    rows = lie_attribution(layers, None, x, action="translate")
    total = lie_derivative(jq.chain(*layers), x, action="translate", return_map=True).maps
    np.testing.assert_allclose(rows[0]["contribution"] + rows[1]["contribution"], total,
                               atol=1e-5)


class _Validated(Conv):
    def validate(self):
        return None


class _CheckedConv(_Validated):
    def __post_init__(self):
        super().__post_init__()
        self.validate()  # methods run on the unbound submodule while the parent runs (as
        # jaxeq's models check their arguments): the attribution's interceptor must pass them

    def validate(self):
        return super().validate()


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(_CheckedConv(3, 3, name="conv1")(x))
        x = Conv(4, 3, strides=2, fill="circular", name="conv2")(x)
        return nn.Dense(2, name="head")(jnp.mean(x, axis=(1, 2)))

    def feature_strides(self):
        return {"conv1": (1, 1), "conv2": (2, 2)}


def test_flax_module_contributions_sum_to_its_lie_derivative(data):
    x = data[0]
    model = _Net()
    variables = model.init(jax.random.key(0), x)
    rows = lie_attribution(model, variables, x)
    assert [r["path"] for r in rows] == ["conv1", "conv2", "(output)", "(total)"]
    assert rows[0]["stride"] == (1, 1) and rows[2]["stride"] is None
    total = lie_derivative(lambda v: model.apply(variables, v), x, return_map=True).maps
    parts = sum(r["contribution"] for r in rows[:-1])
    scale = np.abs(total).max()
    np.testing.assert_allclose(rows[-1]["contribution"], total, atol=1e-5 * scale)
    np.testing.assert_allclose(parts, total, atol=1e-5 * scale)
    np.testing.assert_allclose(sum(r["share"] for r in rows[:-1]), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="feature_strides"):
        lie_attribution(model, variables, x, paths=["nope"])
    with pytest.raises(TypeError, match="StridedModule"):
        lie_attribution(object(), None, x)


def test_max_pool_fast_path_has_forward_mode_and_custom_vjp_takes_reverse_over_reverse(data):
    # jq.max_pool's fast path defines a JVP: forward mode equals the plain reduce_window max's
    from jaxeq.analysis.lie import push_forward
    from jaxeq.pool import window_max

    x, w1, _ = data
    h = jq.conv(x, w1)
    tangent = jnp.roll(h, 1, axis=1) - h
    fast = jax.jvp(lambda v: jq.max_pool(v, 2), (h,), (tangent,))[1]
    plain = jax.jvp(lambda v: window_max(v, (2, 2), (2, 2)), (h,), (tangent,))[1]
    assert np.abs(np.asarray(plain)).max() > 0.1
    np.testing.assert_allclose(fast, plain, atol=1e-6)

    # a function holding a jax.custom_vjp has no forward mode: push_forward transposes its VJP
    @jax.custom_vjp
    def pool(v):
        return window_max(v, (2, 2), (2, 2))

    pool.defvjp(lambda v: jax.vjp(lambda u: window_max(u, (2, 2), (2, 2)), v),
                lambda pull, g: pull(g))
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(pool, (h,), (tangent,))
    np.testing.assert_allclose(push_forward(pool, h)[1](tangent), plain, atol=1e-6)
    # and through a layer-by-layer split (push called under several vmaps in one program)
    layers = [partial(jq.conv, kernel=w1), jax.nn.relu, partial(jq.max_pool, window=2)]
    rows = lie_attribution(layers, None, x)
    total = lie_derivative(jq.chain(*layers), x, out_stride=2, return_map=True).maps
    assert rows[2]["stride"] == (2, 2)
    np.testing.assert_allclose(sum(r["contribution"] for r in rows[:-1]), total, atol=1e-5)
