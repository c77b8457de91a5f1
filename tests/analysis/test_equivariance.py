"""The equivariance analysis API: errors, masks, border split, assertions, error maps,
layer-by-layer tables (jq.chain nets and a small flax module), and bad input."""
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq.analysis.engine import ShiftErrors, shifted_apply


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 12, 12, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 3)), jnp.float32)
    return x, w


def test_circular_exact_and_same_zero_border_only(x64):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(1, 10, 11, 2)))
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 2)))
    shifts = jq.shift_grid(2)
    circ = jq.equivariance_error(partial(jq.conv, kernel=w, fill="circular"), x, shifts)
    assert circ.shape == (25,) and np.max(circ) < 1e-14
    same = jq.equivariance_error(partial(jq.conv, kernel=w), x, shifts, action="translate",
                                 border=1)
    assert isinstance(same, ShiftErrors)
    assert np.max(same.interior) < 1e-14 and np.max(same.border) > 1e-2
    # the relative parts share the total's denominator
    np.testing.assert_allclose(same.interior ** 2 + same.border ** 2, same.total ** 2,
                               rtol=1e-10, atol=1e-30)


def test_the_three_metrics_agree_under_roll(data):
    x, w = data
    f = partial(jq.conv, kernel=w)  # same-zero
    shifts = jq.shift_grid(1)
    rel = jq.equivariance_error(f, x, shifts, action="roll")
    l2 = jq.equivariance_error(f, x, shifts, action="roll", metric="l2")
    mx = jq.equivariance_error(f, x, shifts, action="roll", metric="max_abs")
    assert rel[4] == 0 and l2[4] == 0 and mx[4] == 0  # the zero shift (centre of the grid)
    norm = float(jnp.linalg.norm(f(x)))
    moved = np.arange(9) != 4
    # relative = l2 / ||roll f(x)||, and a roll keeps the norm of f(x)
    np.testing.assert_allclose(l2[moved] / rel[moved], norm, rtol=1e-4)
    assert np.all(mx <= l2 + 1e-6) and np.all(mx[moved] > 0)


def test_off_subgroup_shifts_are_nan(data):
    x, w = data
    f = partial(jq.conv, kernel=w, stride=2, fill="circular")
    shifts = jq.shift_grid(2)
    err = jq.equivariance_error(f, x, shifts, out_stride=2)
    even = np.all(np.asarray(shifts) % 2 == 0, axis=1)
    assert np.all(np.isnan(err[~even])) and np.all(err[even] < 1e-6)
    errs = jq.equivariance_error(f, x, shifts, out_stride=2, border=1)
    assert np.all(np.isnan(errs.interior[~even])) and np.all(np.isnan(errs.border[~even]))


def test_translate_compares_only_where_defined(x64):
    """A full-zero conv of content on a zero canvas: exact, although the translated reference
    has vacated pixels and the output has grown."""
    rng = np.random.default_rng(2)
    x = np.zeros((1, 12, 12, 1))
    x[:, 3:9, 3:9] = rng.normal(size=(1, 6, 6, 1))
    f = partial(jq.conv, kernel=jnp.asarray(rng.normal(size=(5, 5, 1, 2))), padding="full")
    assert np.max(jq.equivariance_error(f, jnp.asarray(x), jq.shift_grid(3),
                                        action="translate")) < 1e-14


def test_single_vmapped_call_traces_f_a_fixed_number_of_times(data):
    """All shifts go through one call: f is traced no more often for 49 shifts than for 4 (no
    Python loop over shifts): the shape check, the working-set estimate, the reference and the
    batched copies."""
    x, w = data
    calls = []

    def f(v):
        calls.append(v.shape)
        return jq.conv(v, w, fill="circular")

    jq.equivariance_error(f, x, jq.shift_grid(1, step=1)[:4])
    few = len(calls)
    calls.clear()
    jq.equivariance_error(f, x, jq.shift_grid(3))
    assert len(calls) <= few <= 4  # eval_shape and the estimate may reuse cached traces


def test_chunked_equals_one_batch_and_vmapped(data):
    x, w = data
    f = partial(jq.conv, kernel=w)
    shifts = jq.shift_grid(2)
    a = jq.equivariance_error(f, x, shifts, action="translate")
    b = jq.equivariance_error(f, x, shifts, action="translate", chunk_size=7)
    c = jq.equivariance_error(f, x, shifts, action="translate", chunk_size=7, batching="vmap")
    assert np.all(np.asarray(a)[np.any(np.asarray(shifts) != 0, axis=1)] > 0)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-7)


def test_shifted_apply_matches_loop(data):
    x, w = data
    f = partial(jq.conv, kernel=w)
    shifts = jq.shift_grid(1)
    ys = shifted_apply(f, action="translate")(x, shifts)
    assert ys.shape == (9,) + f(x).shape
    for y, s in zip(ys, shifts):
        np.testing.assert_allclose(y, f(jq.translate(x, s)), rtol=1e-5, atol=1e-5)


def test_assert_helpers_name_the_worst_shift(data):
    x, w = data
    reads_corner = lambda v: v + v[:, :1, :1, :]  # noqa: E731  breaks equivariance
    with pytest.raises(AssertionError, match=r"worst shift \(-?\d+, -?\d+\)"):
        jq.assert_equivariant(reads_corner, x, jq.shift_grid(1))
    jq.assert_equivariant(partial(jq.conv, kernel=w, fill="circular"), x, jq.shift_grid(2),
                          atol=1e-5)
    jq.assert_invariant(jq.global_avg_pool, x, jq.shift_grid(2), atol=1e-6)
    with pytest.raises(AssertionError, match="not invariant"):
        jq.assert_invariant(lambda v: v[:, 0, 0, :], x, jq.shift_grid(1))
    with pytest.raises(ValueError, match="out_stride"):
        jq.assert_equivariant(lambda v: v[:, ::2, ::2], x, jq.shift_grid(1), out_stride=2)


def test_invariance_error(data):
    x, _ = data
    shifts = jq.shift_grid(2)
    assert np.max(jq.invariance_error(jq.global_max_pool, x, shifts)) == 0
    corner = jq.invariance_error(lambda v: v[:, 0, 0, :], x, shifts)
    assert corner[12] == 0 and np.min(np.delete(corner, 12)) > 0


def test_error_map_shows_the_border_frame(x64):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(2, 10, 9, 2)))
    f = partial(jq.conv, kernel=jnp.asarray(rng.normal(size=(5, 5, 2, 2))))  # same-zero, k=5
    m = jq.error_map(f, x, jq.shift_grid(2), action="translate")
    assert m.shape == (10, 9)
    assert np.max(m[2:-2, 2:-2]) < 1e-14
    frame = np.ones_like(m, bool)
    frame[2:-2, 2:-2] = False
    assert np.min(m[frame]) > 0
    circ = jq.error_map(partial(jq.conv, kernel=jnp.asarray(rng.normal(size=(5, 5, 2, 2))),
                                fill="circular"), x, jq.shift_grid(2))
    assert np.max(circ) < 1e-14


# ---------------------------------------------------------------- layer by layer

def test_layerwise_chain_strides_and_rows(data):
    x, w = data
    rng = np.random.default_rng(4)
    w2 = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)
    net = jq.chain(partial(jq.conv, kernel=w, fill="circular"), jax.nn.relu,
                   partial(jq.max_pool, window=2, fill="circular"),
                   partial(jq.conv, kernel=w2, stride=2, fill="circular"), jq.global_avg_pool)
    rows = jq.layerwise_equivariance(net, None, x, jq.shift_grid(4, step=2))
    assert [r["path"] for r in rows] == ["0:conv", "1:relu", "2:max_pool", "3:conv",
                                         "4:global_avg_pool"]
    assert [r["stride"] for r in rows] == [(1, 1), (1, 1), (2, 2), (4, 4), None]
    assert [r["n_shifts"] for r in rows] == [25, 25, 25, 9, 25]
    assert rows[-1]["kind"] == "invariant" and rows[0]["shape"] == (12, 12, 3)
    for r in rows[:-1]:
        assert r["max"] < 1e-5, r
    # global average after stride 4 is not invariant to shifts of 2
    assert rows[-1]["max"] > 1e-3


def test_layerwise_chain_same_zero_leaks_and_undeclared_stride(data):
    x, w = data
    net = jq.chain(partial(jq.conv, kernel=w), jax.nn.relu, lambda v: v[:, ::2, ::2, :])
    rows = jq.layerwise_equivariance(net, None, x, jq.shift_grid(1), action="translate")
    assert rows[0]["interior"] == 0 and rows[0]["border"] > 0
    assert "assumed 1" in rows[2]["note"]


class _Tiny(nn.Module):
    """conv (stride 1) -> BN -> relu -> conv (stride 2) -> global max -> Dense, with the
    contract's feature_strides(); 'extra' is deliberately missing from it."""
    fill: str = "zeros"
    padding: str = "same"

    @nn.compact
    def __call__(self, x, train: bool = False):
        k1 = self.param("k1", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], 4))
        y = _Conv(k1, 1, self.padding, self.fill, name="conv1")(x)
        y = nn.BatchNorm(use_running_average=not train, name="bn1")(y)
        y = nn.relu(y)
        k2 = self.param("k2", nn.initializers.lecun_normal(), (3, 3, 4, 4))
        y = _Conv(k2, 2, self.padding, self.fill, name="conv2")(y)
        y = _Conv(jnp.eye(4)[None, None], 1, self.padding, self.fill, name="extra")(y)
        return nn.Dense(3, name="head")(jq.global_max_pool(y))

    def feature_strides(self):
        return {"conv1": (1, 1), "bn1": (1, 1), "conv2": (2, 2)}


class _Conv(nn.Module):
    kernel: jnp.ndarray
    stride: int
    padding: str
    fill: str

    def __call__(self, x):
        return jq.conv(x, self.kernel, stride=self.stride, padding=self.padding, fill=self.fill)


def test_layerwise_flax_module():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(1, 8, 8, 2)), jnp.float32)
    shifts = jq.shift_grid(2)
    circ = _Tiny(fill="circular")
    variables = circ.init(jax.random.key(0), x)
    rows = {r["path"]: r for r in jq.layerwise_equivariance(circ, variables, x, shifts)}
    assert list(rows) == ["conv1", "bn1", "conv2", "extra", "head", "(output)"]
    assert rows["conv2"]["stride"] == (2, 2) and rows["conv2"]["n_shifts"] == 9
    assert rows["extra"]["kind"] == "skipped" and "feature_strides" in rows["extra"]["note"]
    assert rows["head"]["kind"] == "invariant"
    for name in ("conv1", "bn1", "conv2"):
        assert rows[name]["max"] < 1e-5, rows[name]
    zero = _Tiny(fill="zeros")
    zrows = {r["path"]: r for r in jq.layerwise_equivariance(
        zero, variables, x, shifts, error_maps=True)}
    assert zrows["conv1"]["max"] > 1e-2
    assert zrows["conv1"]["error_map"].shape == (8, 8)


# ---------------------------------------------------------------- bad input

def test_bad_input_names_the_argument(data):
    x, w = data
    f = partial(jq.conv, kernel=w)
    with pytest.raises(TypeError, match="shifts"):
        jq.equivariance_error(f, x, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="shifts"):
        jq.equivariance_error(f, x, np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="shifts"):
        jq.equivariance_error(f, x, np.zeros((2,), np.int32))
    with pytest.raises(ValueError, match="action"):
        jq.equivariance_error(f, x, jq.shift_grid(1), action="shift")
    with pytest.raises(ValueError, match="out_stride"):
        jq.equivariance_error(f, x, jq.shift_grid(1), out_stride=5)
    with pytest.raises(ValueError, match="out_stride"):
        jq.equivariance_error(f, x, jq.shift_grid(1), out_stride=0)
    with pytest.raises(ValueError, match="metric"):
        jq.equivariance_error(f, x, jq.shift_grid(1), metric="l3")
    with pytest.raises(ValueError, match="border"):
        jq.equivariance_error(f, x, jq.shift_grid(1), border=6)
    with pytest.raises(ValueError, match="invariance_error"):
        jq.equivariance_error(jq.global_avg_pool, x, jq.shift_grid(1))
    with pytest.raises(ValueError, match="x must have shape"):
        jq.equivariance_error(f, x[0, 0], jq.shift_grid(1))
    with pytest.raises(TypeError, match="feature_strides|jq.chain"):
        jq.layerwise_equivariance(object(), None, x, jq.shift_grid(1))


def test_repeated_calls_with_the_same_function_compile_once():
    """The measurement program is cached per function and settings, so a sweep or a benchmark
    that calls equivariance_error / invariance_error repeatedly does not re-trace each time."""
    traces = []

    def f(v):
        traces.append(1)
        return jq.global_avg_pool(v)

    x = jnp.ones((1, 8, 8, 2))
    shifts = jq.shift_grid(2)
    for _ in range(3):
        jq.invariance_error(f, x, shifts)
    first = len(traces)
    jq.invariance_error(f, x + 1.0, shifts)
    assert first >= 1 and len(traces) == first


def test_x_without_batch_axis_is_blamed_not_the_shifts(data):
    x, w = data
    with pytest.raises(ValueError, match=r"^x must have shape \(N, \*spatial, C\) with 2 spatial "
                                         r"dim\(s\), as the shifts have 2 columns; got shape "
                                         r"\(12, 12, 2\): add the batch axis"):
        jq.equivariance_error(lambda v: v, x[0], jq.shift_grid(1))


def test_a_strided_f_without_out_stride_is_refused_with_the_likely_one(data):
    x, w = data
    f = partial(jq.conv, kernel=w, stride=2)
    with pytest.raises(ValueError, match=r"^f maps spatial size \(12, 12\) to \(6, 6\): pass its "
                                         r"total stride as out_stride \(likely 2\), or "
                                         r"out_stride=1 if it is not strided and only crops$"):
        jq.equivariance_error(f, x, jq.shift_grid(2, step=2))
    assert np.all(np.isfinite(jq.equivariance_error(f, x, jq.shift_grid(2, step=2),
                                                    out_stride=2)))
    # an f that only crops a lot is measured once out_stride=1 is stated
    crop = lambda v: v[:, 3:-3, 3:-3]  # noqa: E731
    with pytest.raises(ValueError, match="likely 2"):
        jq.equivariance_error(crop, x, jq.shift_grid(1), action="translate")
    assert jq.equivariance_error(crop, x, jq.shift_grid(1), action="translate",
                                 out_stride=1).shape == (9,)
    # padding changes the size a little: accepted without out_stride
    for padding in ("valid", "full"):
        g = partial(jq.conv, kernel=w, padding=padding)
        assert np.all(np.isfinite(jq.equivariance_error(g, x, jq.shift_grid(1),
                                                        action="translate")))
