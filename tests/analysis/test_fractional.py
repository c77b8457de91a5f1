"""Sub-pixel shifts: jq.fractional_shift against analytic cosines and roll, the engine's
action="fractional", and EQ-T in dB against a PSNR computed by hand."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq.analysis.fractional import eq_t_db, eq_t_shifts


def _bandlimited(rng, shape, max_freq):
    """(1, *shape, 2) sum of random cosines with integer frequencies |k| <= max_freq per axis
    (no Nyquist content), and a function giving its exact values at shifted positions."""
    ks = rng.integers(-max_freq, max_freq + 1, size=(6, len(shape)))
    amp, phase = rng.normal(size=(6, 2)), rng.uniform(0, 2 * np.pi, size=(6, 2))
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")

    def at(shift):
        out = np.zeros(shape + (2,))
        for k, a, p in zip(ks, amp, phase):
            arg = sum(2 * np.pi * kd * (g - s) / n
                      for kd, g, s, n in zip(k, grids, shift, shape))
            out += a * np.cos(arg[..., None] + p)
        return out[None]

    return at


@pytest.fixture(scope="module")
def signal():
    rng = np.random.default_rng(3)
    at = _bandlimited(rng, (12, 9), 3)
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 3)), jnp.float32)
    return at, jnp.asarray(at((0.0, 0.0)), jnp.float32), w


def test_shift_of_cosines_is_exact_and_invertible(signal):
    at, x, _ = signal
    for s in [(0.3, -1.7), (2.5, 0.25), (-4.4, 3.9)]:
        moved = jq.fractional_shift(x, jnp.asarray(s))
        np.testing.assert_allclose(moved, at(s), atol=2e-5)
        back = jq.fractional_shift(moved, -jnp.asarray(s))
        np.testing.assert_allclose(back, x, atol=2e-5)


def test_integer_shift_equals_roll_even_and_odd_sizes():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 8, 7, 3)), jnp.float32)  # white noise: Nyquist included
    shifts = jq.shift_grid(3)
    got = jax.vmap(lambda s: jq.fractional_shift(x, s.astype(jnp.float32)))(shifts)
    want = jax.vmap(lambda s: jq.roll(x, s))(shifts)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.all(np.isreal(np.asarray(got)))


def test_nyquist_half_shift_is_cosine_weighted():
    # the 1-D Nyquist pattern (-1)^i has spectrum only at k = -n/2: a half-pixel shift scales
    # it by cos(pi/2) = 0; a quarter-pixel one by cos(pi/4)
    x = jnp.asarray((-1.0) ** np.arange(6), jnp.float32)[None, :, None]
    np.testing.assert_allclose(jq.fractional_shift(x, 0.5), 0 * x, atol=1e-6)
    np.testing.assert_allclose(jq.fractional_shift(x, 0.25), np.cos(np.pi / 4) * x, atol=1e-6)


def test_circular_conv_commutes_with_fractional_shifts(signal):
    _, x, w = signal
    shifts = jnp.asarray([[0.5, 0.25], [-1.3, 2.7], [3.0, -0.5]], jnp.float32)
    circ = partial(jq.conv, kernel=w, fill="circular")
    assert np.max(jq.equivariance_error(circ, x, shifts, action="fractional")) < 1e-5
    jq.assert_equivariant(circ, x, shifts, action="fractional", atol=1e-5)
    same = partial(jq.conv, kernel=w)
    err = jq.equivariance_error(same, x, shifts, action="fractional")
    assert np.all(err > 1e-2)
    with pytest.raises(AssertionError, match=r"\(-1\.3"):
        jq.assert_equivariant(same, x, shifts[1:2], action="fractional")


def test_fractional_with_stride_and_invariance():
    # input band-limited to |k| < n/4: a stride-2 circular conv does not alias, so a shift
    # s of the input is exactly a shift s/2 of the output, for every real s
    at = _bandlimited(np.random.default_rng(5), (16, 16), 3)
    x = jnp.asarray(at((0.0, 0.0)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(6).normal(size=(3, 3, 2, 2)), jnp.float32)
    f = partial(jq.conv, kernel=w, fill="circular", stride=2)
    shifts = jnp.asarray([[0.7, -1.1], [1.0, 0.0]], jnp.float32)
    err = jq.equivariance_error(f, x, shifts, action="fractional", out_stride=2)
    assert np.all(err < 1e-5)
    pooled = jq.invariance_error(lambda v: jnp.mean(v, axis=(1, 2)), x, shifts,
                                 action="fractional")
    assert np.all(pooled < 1e-5)


def test_integer_actions_keep_refusing_real_shifts(signal):
    _, x, w = signal
    f = partial(jq.conv, kernel=w, fill="circular")
    for action in ("roll", "translate"):
        with pytest.raises(TypeError, match="integer array"):
            jq.equivariance_error(f, x, np.array([[0.5, 0.0]]), action=action)
    with pytest.raises(TypeError, match="real array"):
        jq.equivariance_error(f, x, np.array([[True, False]]), action="fractional")
    with pytest.raises(ValueError, match="shape"):
        jq.fractional_shift(x, jnp.zeros(3))


def _psnr_by_hand(b, shifts, action, peak):
    """f(x) = x + b: f(T x) - T f(x) = b - T b on the compared pixels (numpy slicing)."""
    h, w = b.shape
    sq, count = 0.0, 0
    for dy, dx in shifts:
        if action == "roll":
            d = b - np.roll(b, (dy, dx), axis=(0, 1))
            sq, count = sq + np.sum(d ** 2), count + d.size
        else:
            rows, cols = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
            src = b[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            d = b[rows, cols] - src
            sq, count = sq + np.sum(d ** 2), count + d.size
    return 10 * np.log10(peak ** 2 / (sq / count))


def test_eq_t_db_matches_hand_psnr(signal):
    _, x, w = signal
    b = np.random.default_rng(7).normal(size=x.shape[1:3])
    f = lambda v: v + jnp.asarray(b, v.dtype)[None, :, :, None]  # noqa: E731
    shifts = [(1, 0), (-2, 3), (0, -1)]
    for action in ("roll", "translate"):
        got = eq_t_db(f, x, np.array(shifts), action=action, max_value=2.0)
        np.testing.assert_allclose(got, _psnr_by_hand(b, shifts, action, 2.0), rtol=1e-5)
    # peak 1 instead of 2: exactly 20 log10(2) dB less
    np.testing.assert_allclose(eq_t_db(f, x, np.array(shifts), action="roll", max_value=1.0),
                               _psnr_by_hand(b, shifts, "roll", 2.0) - 20 * np.log10(2),
                               rtol=1e-5)
    circ = partial(jq.conv, kernel=w, fill="circular")
    assert eq_t_db(circ, x, np.array(shifts), action="roll") == np.inf
    assert eq_t_db(circ, x, np.array([[0.5, -0.25]]), action="fractional") > 90


def test_eq_t_shifts_follow_stylegan3_sampling():
    key = jax.random.key(0)
    t = np.asarray(eq_t_shifts(key, 200, (64, 32)))
    assert t.dtype == np.int32 and t.shape == (200, 2)
    assert np.abs(t[:, 0]).max() <= 8 and np.abs(t[:, 1]).max() <= 4
    frac = np.asarray(eq_t_shifts(key, 200, 64, fractional=True))
    assert frac.dtype == np.float32 and np.abs(frac).max() <= 8
    np.testing.assert_array_equal(np.round(frac).astype(np.int32), np.asarray(
        eq_t_shifts(key, 200, 64)))
    with pytest.raises(ValueError, match="max_fraction"):
        eq_t_shifts(key, 3, 64, max_fraction=0.9)
