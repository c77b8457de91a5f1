"""Semantics of the core functions beyond PyTorch parity: pad pairs, wrap-around pads,
shift actions, and that jit / grad / vmap go through every function."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jaxeq as jq


@pytest.mark.parametrize("padding,k,d,expected", [
    ("valid", 3, 1, (0, 0)), ("same", 3, 1, (1, 1)), ("same", 4, 1, (1, 2)),
    ("same", 3, 2, (2, 2)), ("same", 1, 1, (0, 0)), ("full", 3, 1, (2, 2)),
    ("full", 7, 1, (6, 6)), ("full", 3, 2, (4, 4)), ("same", 7, 1, (3, 3)),
])
def test_padding_pairs_table(padding, k, d, expected):
    assert jq.padding_pairs(padding, k, dilation=d) == (expected,)
    assert jq.padding_pairs(padding, (k, k), dilation=d) == (expected, expected)


def test_same_pads_do_not_depend_on_stride_or_input_size():
    # torchvision's 3x3/s2 pad 1, 7x7/s2 pad 3, 1x1/s2 pad 0
    assert jq.padding_pairs("same", (3, 3), stride=2) == ((1, 1), (1, 1))
    assert jq.padding_pairs("same", (7, 7), stride=2, input_size=(224, 225)) == ((3, 3), (3, 3))
    assert jq.padding_pairs("same", (1, 1), stride=2) == ((0, 0), (0, 0))


def test_explicit_pairs_pass_through():
    assert jq.padding_pairs(((1, 2), (0, 3)), (3, 3)) == ((1, 2), (0, 3))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(1, 6), s=st.integers(1, 3), d=st.integers(1, 2),
       padding=st.sampled_from(jq.PADDINGS))
def test_output_size_matches_conv_shape(n, k, s, d, padding):
    span = d * (k - 1) + 1
    if padding == "valid" and n < span:
        return
    x = jnp.zeros((1, n, 1))
    w = jnp.zeros((k, 1, 1))
    y = jax.eval_shape(functools.partial(jq.conv, stride=s, dilation=d, padding=padding), x, w)
    assert y.shape[1] == jq.output_size(n, k, stride=s, dilation=d, padding=padding)
    if padding == "same":
        assert y.shape[1] == -(-n // s)  # ceil(n / s)
    if padding == "full" and s == 1:
        assert y.shape[1] == n + span - 1


def test_circular_pad_wraps_beyond_the_input_size():
    x = jnp.arange(3.0).reshape(1, 3, 1)
    y = jq.pad(x, ((4, 5),), "circular")[0, :, 0]
    # periodic extension: index i of the padded array is x[(i - 4) mod 3]
    np.testing.assert_array_equal(y, np.arange(-4, 3 + 5) % 3)


def test_replicate_and_zeros_pads():
    x = jnp.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    np.testing.assert_array_equal(jq.pad(x, ((2, 1),), "replicate")[0, :, 0], [1, 1, 1, 2, 3, 3])
    np.testing.assert_array_equal(jq.pad(x, ((1, 2),), "zeros")[0, :, 0], [0, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(jq.pad(x, ((2, 2),), "reflect")[0, :, 0], [3, 2, 1, 2, 3, 2, 1])


def test_fill_changes_values_not_the_grid():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 7, 7, 2)), jnp.float32)
    w = jnp.ones((3, 3, 2, 1))
    outs = {f: jq.conv(x, w, padding="same", fill=f) for f in jq.FILLS}
    assert len({o.shape for o in outs.values()}) == 1
    interior = {f: np.asarray(o[:, 1:-1, 1:-1]) for f, o in outs.items()}
    for f in jq.FILLS:  # the fill only reaches the one-pixel border of a 3x3 conv
        np.testing.assert_allclose(interior[f], interior["zeros"], rtol=1e-6)
        assert f == "zeros" or not np.allclose(outs[f], outs["zeros"])


def test_translate_moves_content_and_fills():
    x = jnp.arange(1.0, 6.0).reshape(1, 5, 1)
    np.testing.assert_array_equal(jq.translate(x, 2)[0, :, 0], [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(jq.translate(x, -1, fill_value=-7.0)[0, :, 0], [2, 3, 4, 5, -7])
    np.testing.assert_array_equal(jq.translate(x, 9)[0, :, 0], np.zeros(5))
    np.testing.assert_array_equal(jq.roll(x, 2)[0, :, 0], [4, 5, 1, 2, 3])


def test_crop_window():
    x = jnp.arange(36.0).reshape(1, 6, 6, 1)
    np.testing.assert_array_equal(jq.crop(x, (1, 2), (2, 3))[0, :, :, 0],
                                  np.arange(36.0).reshape(6, 6)[1:3, 2:5])


def test_shift_grid_contents():
    g = np.asarray(jq.shift_grid(2, ndim=2))
    assert g.shape == (25, 2) and g.dtype == np.int32
    assert {tuple(r) for r in g} == {(a, b) for a in range(-2, 3) for b in range(-2, 3)}
    g = np.asarray(jq.shift_grid(5, ndim=1, step=2))
    assert g[:, 0].tolist() == [-4, -2, 0, 2, 4]


@pytest.mark.parametrize("action", [jq.roll, jq.translate, lambda x, s: jq.crop(x, s + 3, 4)])
def test_shift_actions_vmap_over_traced_shifts_in_one_compile(action):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 10, 10, 3)), jnp.float32)
    shifts = jq.shift_grid(3)
    traces = []

    @jax.jit
    def batched(s):
        traces.append(1)  # counts Python traces: one compile for all shifts
        return jax.vmap(lambda t: action(x, t))(s)

    out = batched(shifts)
    assert len(traces) == 1 and out.shape[0] == shifts.shape[0]
    for i in (0, 7, 30):
        np.testing.assert_array_equal(out[i], action(x, np.asarray(shifts[i])))


FUNCTIONS = {
    "conv_full": lambda x: jq.conv(x, jnp.ones((3, 3, 3, 2)), padding="full"),
    "conv_circular_s2": lambda x: jq.conv(x, jnp.ones((3, 3, 3, 2)), stride=2, fill="circular"),
    "conv_reflect_dil2": lambda x: jq.conv(x, jnp.ones((3, 3, 3, 2)), dilation=2, fill="reflect"),
    "max_pool": lambda x: jq.max_pool(x, 3, stride=2, padding="same"),
    "avg_pool": lambda x: jq.avg_pool(x, 3, stride=1, padding="same", count_include_pad=False),
    "blur_pool": lambda x: jq.blur_pool(x, padding="full", fill="zeros"),
    "aps_pool": lambda x: jq.aps_pool(x),
    "global_max": jq.global_max_pool,
    "global_avg": jq.global_avg_pool,
    "pad_replicate": lambda x: jq.pad(x, ((1, 2), (3, 0)), "replicate"),
    "translate": lambda x: jq.translate(x, (1, -2)),
    "roll": lambda x: jq.roll(x, (1, -2)),
    "crop": lambda x: jq.crop(x, (1, 2), 4),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_jit_grad_vmap_work_through(name):
    f = FUNCTIONS[name]
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
    eager = f(x)
    np.testing.assert_allclose(jax.jit(f)(x), eager, rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda a: jnp.sum(f(a) ** 2))(x)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
    batched = jax.vmap(lambda a: f(a[None])[0])(x)
    np.testing.assert_allclose(batched, eager, rtol=1e-5, atol=1e-6)


def test_chain_composes_left_to_right():
    w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 1, 2)), jnp.float32)
    net = jq.chain(functools.partial(jq.conv, kernel=w, padding="full"), jax.nn.relu,
                   jq.global_max_pool)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6, 6, 1)), jnp.float32)
    np.testing.assert_allclose(net(x), jq.global_max_pool(jax.nn.relu(jq.conv(x, w, padding="full"))))
    assert len(net.fns) == 3


def test_binomial_filters_are_pascal_rows():
    np.testing.assert_allclose(jq.binomial_filter(3, ndim=1), np.array([1, 2, 1]) / 4)
    np.testing.assert_allclose(jq.binomial_filter(5, ndim=1), np.array([1, 4, 6, 4, 1]) / 16)
    f2 = jq.binomial_filter(3)
    assert f2.shape == (3, 3) and abs(f2.sum() - 1) < 1e-12


def test_aps_keeps_the_largest_polyphase_component():
    x = np.zeros((2, 4, 4, 1), np.float32)
    x[0, 1::2, 0::2] = 5.0  # component (1, 0) dominates sample 0
    x[1, 1::2, 1::2] = 3.0  # component (1, 1) dominates sample 1
    y = np.asarray(jq.aps_pool(x))
    np.testing.assert_array_equal(y[0], x[0, 1::2, 0::2])
    np.testing.assert_array_equal(y[1], x[1, 1::2, 1::2])


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "blur_pool", "aps_pool"])
def test_pool_gradients_under_jit(name):
    """Regression: a traced reduction start value broke jit(grad(max_pool)) ("Linearization
    failed"), so every jitted train step through a pooling layer failed."""
    f = FUNCTIONS[name]
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
    g_jit = jax.jit(jax.grad(lambda a: jnp.sum(f(a) ** 2)))(x)
    g_eager = jax.grad(lambda a: jnp.sum(f(a) ** 2))(x)
    np.testing.assert_allclose(g_jit, g_eager, rtol=1e-5, atol=1e-6)
