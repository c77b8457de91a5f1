"""Equivariance properties of the pure functions (issue 2, item 1), asserted with the helpers of
:mod:`jaxeq.analysis.engine`: every check pushes a whole ``shift_grid`` through the function with
``jax.vmap`` in one jitted call (no Python loop over shifts).

Shapes, channel counts and inputs come from a seeded sweep; kernel sizes, strides and dilations
are enumerated. "Exact" means float64 (the ``x64`` fixture) with an absolute tolerance of 1e-12
on outputs of order 1-10.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq

EXACT = dict(atol=1e-12, rtol=0.0)


def _normal(rng, shape, dtype=None):
    dtype = dtype or jnp.result_type(float)
    return jnp.asarray(rng.normal(size=shape), dtype)


def _kernel(rng, k, ndim, c_in, c_out):
    return _normal(rng, (k,) * ndim + (c_in, c_out))


# Spatial sizes and shift radius per number of spatial dims (non-square on purpose).
SIZES = {1: (13,), 2: (9, 10), 3: (5, 4, 6)}
MAX_SHIFT = {1: 6, 2: 3, 3: 2}
CHANNELS = {1: 2, 2: 2, 3: 1}


KERNELS = [(k, d) for k in range(1, 8) for d in (1, 2)]


def _assert_all_kernels(rng, x, shifts, action, c_in, c_out, **conv_kwargs):
    """Check every (kernel size, dilation) in ONE compiled program: their outputs concatenated
    on channels, which is equivariant iff each is (outputs of "full" convs differ in size: each
    is zero-padded at the high end to the largest, which keeps the zero margin of content on a
    zero canvas); on failure, name the failing kernels."""
    ndim = x.ndim - 2
    convs = [partial(jq.conv, kernel=_kernel(rng, k, ndim, c_in, c_out), dilation=d,
                     **conv_kwargs) for k, d in KERNELS]

    def both(v):
        outs = [f(v) for f in convs]
        big = np.max([o.shape for o in outs], axis=0)
        return jnp.concatenate([jnp.pad(o, [(0, int(b - n)) for b, n in zip(big, o.shape[:-1])]
                                        + [(0, 0)]) for o in outs], axis=-1)
    try:
        jq.assert_equivariant(both, x, shifts, action=action, **EXACT)
    except AssertionError:
        bad = [kd for kd, f in zip(KERNELS, convs) if np.nanmax(jq.equivariance_error(
            f, x, shifts, action=action, metric="max_abs")) > EXACT["atol"]]
        raise AssertionError(f"not equivariant for (kernel, dilation) in {bad}") from None


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_circular_conv_commutes_with_roll(x64, ndim):
    """Stride-1 circular conv == roll-equivariant, kernels 1..7, dilations 1..2, exactly."""
    rng = np.random.default_rng(ndim)
    x = _normal(rng, (2,) + SIZES[ndim] + (CHANNELS[ndim],))
    _assert_all_kernels(rng, x, jq.shift_grid(MAX_SHIFT[ndim], ndim=ndim), "roll",
                        CHANNELS[ndim], 2, padding="same", fill="circular")


def test_circular_conv_roll_float32_tight():
    rng = np.random.default_rng(7)
    x = _normal(rng, (2, 12, 11, 3), jnp.float32)
    for k in (3, 6):
        w = _kernel(rng, k, 2, 3, 4).astype(jnp.float32)
        f = partial(jq.conv, kernel=w, padding="same", fill="circular")
        jq.assert_equivariant(f, x, jq.shift_grid(4), action="roll", atol=1e-6, rtol=1e-5)


def _on_zero_canvas(rng, n, ndim, margin, channels=2, dtype=None):
    """Random content with a zero margin of ``margin`` pixels on every side."""
    x = np.zeros((2,) + (n,) * ndim + (channels,))
    inner = (slice(None),) + (slice(margin, n - margin),) * ndim + (slice(None),)
    x[inner] = rng.normal(size=x[inner].shape)
    return jnp.asarray(x, dtype or jnp.result_type(float))


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_full_zero_conv_commutes_with_translate(x64, ndim):
    """F-Conv: translations of content on a zero canvas commute with the conv, exactly."""
    rng = np.random.default_rng(10 + ndim)
    m = MAX_SHIFT[ndim]
    x = _on_zero_canvas(rng, 2 * m + 3, ndim, m, channels=CHANNELS[ndim])
    _assert_all_kernels(rng, x, jq.shift_grid(m, ndim=ndim), "translate", CHANNELS[ndim], 2,
                        padding="full", fill="zeros")


def test_full_zero_conv_translate_float32_tight():
    rng = np.random.default_rng(3)
    x = _on_zero_canvas(rng, 16, 2, 4, channels=3, dtype=jnp.float32)
    w = _kernel(rng, 5, 2, 3, 4).astype(jnp.float32)
    f = partial(jq.conv, kernel=w, padding="full")
    jq.assert_equivariant(f, x, jq.shift_grid(4), action="translate", atol=1e-6, rtol=1e-5)


def test_translate_needs_the_zero_margin(x64):
    """Content that leaves the canvas is lost: the same F-Conv then fails the check."""
    rng = np.random.default_rng(4)
    x = _normal(rng, (1, 10, 10, 2))  # content up to the edge
    f = partial(jq.conv, kernel=_kernel(rng, 3, 2, 2, 2), padding="full")
    with pytest.raises(AssertionError, match="worst shift"):
        jq.assert_equivariant(f, x, jq.shift_grid(2), action="translate", **EXACT)


@pytest.mark.parametrize("k,d", [(2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (3, 2), (4, 2)])
def test_same_zero_conv_leaks_only_at_the_border(x64, k, d):
    """Same-zero conv: zero error farther than k_eff // 2 from the border, non-zero within."""
    rng = np.random.default_rng(20 + k + 10 * d)
    x = _normal(rng, (2, 14, 15, 2))  # content everywhere, so the border matters
    w = _kernel(rng, k, 2, 2, 3)
    f = partial(jq.conv, kernel=w, dilation=d, padding="same", fill="zeros")
    width = jq.effective_kernel(k, d) // 2
    shifts = jq.shift_grid(3)
    err = jq.equivariance_error(f, x, shifts, action="translate", border=width, metric="max_abs")
    assert np.max(err.interior) < 1e-12, err.interior
    nonzero = np.any(np.asarray(shifts) != 0, axis=1)
    assert np.all(err.border[~nonzero] == 0)
    if jq.effective_kernel(k, d) % 2 == 1:
        # symmetric pads: every non-zero shift brings pad zeros where content was
        assert np.all(err.border[nonzero] > 1e-3), err.border
    else:
        # asymmetric pads ((k_eff-1)//2, k_eff//2): some directions happen to agree
        assert np.max(err.border) > 1e-3
    # and the leak is really that wide: one pixel less of border and the interior fails
    narrower = jq.equivariance_error(f, x, shifts, action="translate", border=width - 1,
                                     metric="max_abs")
    assert np.max(narrower.interior) > 1e-3


def _nearest_roll_error(f, x, shifts, out_stride):
    """Relative L2 distance from f(roll(x, s)) to the closest circular shift of f(x), per shift
    (vmapped over shifts and candidate output shifts): 0 iff the output is some roll of f(x)."""
    y0 = f(x)
    sizes = y0.shape[1:-1]
    cands = jnp.stack(jnp.meshgrid(*[jnp.arange(n) for n in sizes], indexing="ij"),
                      -1).reshape(-1, len(sizes))
    rolled = jax.vmap(lambda t: jq.roll(y0, t))(cands)  # (T, *y0.shape)

    def one(s):
        y = f(jq.roll(x, s))
        d = jnp.sqrt(jnp.sum(jnp.square(rolled - y[None]), axis=tuple(range(1, rolled.ndim))))
        return jnp.min(d) / jnp.sqrt(jnp.sum(jnp.square(y0)))

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(shifts)))


STRIDED = {
    "conv": lambda w, s: partial(jq.conv, kernel=w, stride=s, padding="same", fill="circular"),
    "max_pool": lambda w, s: partial(jq.max_pool, window=s + 1, stride=s, padding="same",
                                     fill="circular"),
    "avg_pool": lambda w, s: partial(jq.avg_pool, window=s, stride=s, fill="circular"),
    "blur_pool": lambda w, s: partial(jq.blur_pool, filter_size=3, stride=s, fill="circular"),
}


@pytest.mark.parametrize("op", sorted(STRIDED))
@pytest.mark.parametrize("stride", [2, 3])
def test_strided_circular_ops_equivariant_on_the_subgroup(x64, op, stride):
    """Stride s with circular fill: exact for shifts that are multiples of s (output moves by
    shift / s), NaN-marked by equivariance_error and measurably broken for the others."""
    rng = np.random.default_rng(stride)
    x = _normal(rng, (2, 4 * stride, 2 * stride, 2))
    f = STRIDED[op](_kernel(rng, 3, 2, 2, 2), stride)
    shifts = np.asarray(jq.shift_grid(2 * stride))
    in_group = np.all(shifts % stride == 0, axis=1)
    jq.assert_equivariant(f, x, shifts[in_group], action="roll", out_stride=stride, **EXACT)
    err = jq.equivariance_error(f, x, shifts, action="roll", out_stride=stride)
    assert np.all(np.isnan(err) == ~in_group)
    off = _nearest_roll_error(f, x, shifts[~in_group], stride)
    assert np.min(off) > 1e-3, (op, stride, off.min())


@pytest.mark.parametrize("pool", [jq.global_avg_pool, jq.global_max_pool])
def test_global_pooling_invariant_to_roll(x64, pool):
    rng = np.random.default_rng(5)
    x = _normal(rng, (3, 7, 8, 4))
    jq.assert_invariant(pool, x, jq.shift_grid(4), action="roll", **EXACT)
    net = jq.chain(partial(jq.conv, kernel=_kernel(rng, 3, 2, 4, 5), fill="circular"),
                   jax.nn.relu, pool)
    jq.assert_invariant(net, x, jq.shift_grid(4), action="roll", **EXACT)


def test_blur_pool_lowers_shift_error_of_max_pooling():
    """Zhang 2019: max (stride 1) then BlurPool (stride 2) is closer to shift-equivariant than
    stride-2 max pooling, measured on the shifts outside the stride-2 subgroup."""
    rng = np.random.default_rng(6)
    x = _normal(rng, (4, 16, 16, 3), jnp.float32)
    shifts = np.asarray(jq.shift_grid(3))
    odd = shifts[np.any(shifts % 2 != 0, axis=1)]
    plain = partial(jq.max_pool, window=2, stride=2)
    blurred = jq.chain(partial(jq.max_pool, window=2, stride=1, padding=((0, 1), (0, 1)),
                               fill="circular"),
                       partial(jq.blur_pool, filter_size=3, stride=2, fill="circular"))
    e_plain = _nearest_roll_error(plain, x, odd, 2)
    e_blur = _nearest_roll_error(blurred, x, odd, 2)
    assert np.mean(e_blur) < np.mean(e_plain), (np.mean(e_blur), np.mean(e_plain))
    assert np.all(e_blur < e_plain)


def _aps_net(rng, subsample):
    w1, w2 = _kernel(rng, 3, 2, 3, 4), _kernel(rng, 3, 2, 4, 4)
    return jq.chain(partial(jq.conv, kernel=w1, fill="circular"), jax.nn.relu, subsample,
                    partial(jq.conv, kernel=w2, fill="circular"), jax.nn.relu, subsample,
                    jq.global_avg_pool)


def test_aps_makes_a_circular_net_exactly_shift_invariant(x64):
    """Chaman & Dokmanic 2021: circular convs + APS + global pooling are invariant to every
    integer circular shift; the same net with plain stride-2 subsampling is not."""
    rng = np.random.default_rng(8)
    x = _normal(rng, (3, 16, 12, 3))
    shifts = jq.shift_grid(5)
    jq.assert_invariant(_aps_net(np.random.default_rng(9), jq.aps_pool), x, shifts,
                        action="roll", **EXACT)
    plain = _aps_net(np.random.default_rng(9), lambda v: v[:, ::2, ::2, :])
    err = jq.invariance_error(plain, x, shifts, action="roll")
    multiple_of_4 = np.all(np.asarray(shifts) % 4 == 0, axis=1)
    assert np.max(err[multiple_of_4]) < 1e-12  # the subgroup it does respect
    assert np.min(err[~multiple_of_4]) > 1e-4, np.min(err[~multiple_of_4])
