"""Worst-case shift metrics: analytic classifiers (exactly invariant; reading absolute
position) and a plain Python loop over the shifts as the reference."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq.analysis.worst_case import shift_map, shift_metrics, worst_case_shifts

W = 8          # width of the position images
A = 2.0        # logit scale of the position classifier


def _position_classifier(x):
    """Logits [A * mass in the left half, A * mass in the right half] of channel 0."""
    left = jnp.sum(x[:, :, : W // 2, 0], axis=(1, 2))
    right = jnp.sum(x[:, :, W // 2:, 0], axis=(1, 2))
    return A * jnp.stack([left, right], axis=-1)


@pytest.fixture(scope="module")
def position_case():
    cols = np.array([0, 3, 4, 6])
    x = np.zeros((len(cols), 4, W, 1), np.float32)
    x[np.arange(len(cols)), 1, cols, 0] = 1.0
    shifts = np.stack([np.zeros(7, np.int32), np.arange(-3, 4, dtype=np.int32)], axis=1)
    return cols, x, shifts


def test_position_classifier_flips_exactly_where_the_pixel_crosses_the_middle(position_case):
    cols, x, shifts = position_case
    labels = (cols >= W // 2).astype(np.int32)
    labels[2] = 0  # a wrong label: image 2 is not correct even unshifted
    res = worst_case_shifts(_position_classifier, x, shifts, labels=labels, chunk_size=3)
    side = lambda c: int(c % W >= W // 2)  # noqa: E731
    flips = np.array([[side(c + s) != side(c) for c in cols] for s in shifts[:, 1]])  # (S, N)
    np.testing.assert_allclose(res.flip_map, flips.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(res.flip_fraction, flips.mean(axis=0), rtol=1e-6)
    top_prob = 1 / (1 + np.exp(-A))  # softmax([A, 0])[0]
    np.testing.assert_allclose(res.mac_per_shift, flips.mean(axis=1) * (2 * top_prob - 1),
                               rtol=1e-5)
    np.testing.assert_allclose(res.mac, flips.mean() * (2 * top_prob - 1), rtol=1e-5)
    robust = (labels == [side(c) for c in cols]) & ~flips.any(axis=0)
    np.testing.assert_array_equal(res.robust, robust)
    assert res.clean_accuracy == pytest.approx(0.75)
    assert res.worst_case_accuracy == pytest.approx(robust.mean())
    assert res.consistency == pytest.approx(1 - flips.mean())
    # labels=None: the clean predictions are the labels (worst-case consistency)
    free = worst_case_shifts(_position_classifier, x, shifts)
    assert free.clean_accuracy == 1.0
    assert free.worst_case_accuracy == pytest.approx(np.mean(~flips.any(axis=0)))


@pytest.fixture(scope="module")
def circular_net():
    rng = np.random.default_rng(0)
    k = jnp.asarray(rng.normal(size=(3, 3, 2, 6)), jnp.float32)
    head = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)

    def f(x):
        y = jax.nn.relu(jq.conv(x, k, fill="circular"))
        return jq.global_avg_pool(y) @ head

    return f


def test_an_exactly_invariant_classifier_has_worst_case_equal_clean_and_no_change(
        circular_net):
    x = np.random.default_rng(1).normal(size=(6, 10, 10, 2)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4, 0], np.int32)
    res = worst_case_shifts(circular_net, x, jq.shift_grid(4), labels=labels)
    assert 0 < res.clean_accuracy < 1
    assert res.worst_case_accuracy == res.clean_accuracy
    assert res.mac < 1e-6 and np.all(res.flip_map == 0) and res.consistency == 1.0
    # the same through f(params, x): the weights as arguments give the same numbers
    scaled = worst_case_shifts(lambda p, v: circular_net(v) * p, x, jq.shift_grid(1),
                               labels=labels, params=jnp.float32(2.0))
    assert scaled.clean_accuracy == res.clean_accuracy and scaled.mac < 1e-6


def _loop_reference(f, x, shifts, labels, action):
    """The metrics with one forward pass per shift and numpy reductions."""
    act = jq.roll if action == "roll" else jq.translate
    clean = np.asarray(f(x))
    top = clean.argmax(-1)
    softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(  # noqa: E731
        z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
    p0 = softmax(clean)[np.arange(len(top)), top]
    robust = top == labels
    flips, mac = [], []
    for s in np.asarray(shifts):
        out = np.asarray(f(act(x, s)))
        robust &= out.argmax(-1) == labels
        flips.append(out.argmax(-1) != top)
        mac.append(np.abs(softmax(out)[np.arange(len(top)), top] - p0).mean())
    return robust, np.array(flips), np.array(mac)


@pytest.mark.parametrize("batching,chunk", [("batch", None), ("vmap", 4)])
def test_matches_a_loop_over_the_shifts_for_a_zero_padded_net(batching, chunk):
    rng = np.random.default_rng(2)
    k = jnp.asarray(rng.normal(size=(3, 3, 1, 4)), jnp.float32)
    head = jnp.asarray(rng.normal(size=(4, 3)) * 3, jnp.float32)

    def f(x):
        y = jax.nn.relu(jq.conv(x, k, stride=2))
        return jq.global_max_pool(y) @ head

    x = np.zeros((8, 12, 12, 1), np.float32)
    x[:, 3:9, 3:9] = rng.normal(size=(8, 6, 6, 1))
    labels = rng.integers(0, 3, size=8).astype(np.int32)
    shifts = np.asarray(jq.shift_grid(2))
    res = worst_case_shifts(f, x, shifts, labels=labels, action="translate",
                            batching=batching, chunk_size=chunk)
    robust, flips, mac = _loop_reference(f, x, shifts, labels, "translate")
    assert flips.any() and not flips.all()  # the case exercises both outcomes
    np.testing.assert_array_equal(res.robust, robust)
    np.testing.assert_allclose(res.flip_map, flips.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(res.mac_per_shift, mac, atol=1e-6)


def test_shift_metrics_is_jittable_and_shift_map_lays_out_the_grid():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    pred = jnp.array([[0, 1], [1, 1], [0, 0]])
    prob = jnp.full((3, 2), 0.5)
    out = jax.jit(shift_metrics)(logits, pred, prob, jnp.array([0, 0]))
    assert float(out["clean_accuracy"]) == 0.5 and float(out["worst_case_accuracy"]) == 0.0
    np.testing.assert_allclose(out["flip_map"], [0.0, 0.5, 0.5])
    grid, axes = shift_map([[0, -1], [0, 1], [2, 1]], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(axes[0], [0, 2])
    np.testing.assert_array_equal(axes[1], [-1, 1])
    np.testing.assert_array_equal(grid, [[1.0, 2.0], [np.nan, 3.0]])


def test_bad_arguments_name_what_is_allowed(circular_net):
    x = np.zeros((2, 6, 6, 2), np.float32)
    with pytest.raises(ValueError, match="labels must be None or"):
        worst_case_shifts(circular_net, x, jq.shift_grid(1), labels=[0])
    with pytest.raises(TypeError, match="shifts must be integers"):
        worst_case_shifts(circular_net, x, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="batching must be one of"):
        worst_case_shifts(circular_net, x, jq.shift_grid(1), batching="loop")
    with pytest.raises(ValueError, match="logits"):
        worst_case_shifts(partial(jq.conv, kernel=jnp.ones((3, 3, 2, 2))), x, jq.shift_grid(1))
