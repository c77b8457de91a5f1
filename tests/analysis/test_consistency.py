"""Consistency and diagonal-shift metrics on classifiers with known answers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq

K = 5  # classes


def ignores_input(images):
    return jnp.broadcast_to(jnp.arange(K, dtype=jnp.float32), (images.shape[0], K))


def reads_top_left(images):
    """Class 0 or 1 by the sign of the top-left pixel: shifts change its answer."""
    v = images[:, 0, 0, 0]
    return jnp.stack([v, -v], axis=-1)


def global_mean(images):
    """Depends on the per-channel means only: invariant to circular shifts."""
    return jnp.mean(images, axis=(1, 2))


@pytest.fixture
def images():
    return jnp.asarray(np.random.default_rng(0).normal(size=(16, 20, 20, 3)), jnp.float32)


def test_crop_consistency_known_answers(images):
    key = jax.random.key(0)
    assert jq.crop_consistency(ignores_input, images, crop=12, max_offset=8, key=key) == 100.0
    corner = jq.crop_consistency(reads_top_left, images, crop=12, max_offset=8, passes=5,
                                 key=key)
    assert 20.0 < corner < 80.0  # two random pixels agree in sign about half the time
    # one offset value only: both crops are the same, so every prediction agrees
    assert jq.crop_consistency(reads_top_left, images, crop=12, max_offset=1, key=key) == 100.0
    # deterministic given the key
    assert corner == jq.crop_consistency(reads_top_left, images, crop=12, max_offset=8,
                                         passes=5, key=key)


def test_circular_consistency_known_answers(images):
    key = jax.random.key(1)
    assert jq.circular_consistency(ignores_input, images, max_shift=4, key=key) == 100.0
    assert jq.circular_consistency(global_mean, images, max_shift=8, key=key) == 100.0
    corner = jq.circular_consistency(reads_top_left, images, max_shift=8, key=key)
    assert 20.0 < corner < 80.0


def test_per_image_values_and_mask(images):
    key = jax.random.key(2)
    per = jq.crop_consistency(reads_top_left, images, crop=12, max_offset=8, key=key,
                              reduce=False)
    assert per.shape == (16,) and np.all((per >= 0) & (per <= 100))
    mask = np.zeros(16, bool)
    mask[:5] = True
    masked = jq.crop_consistency(reads_top_left, images, crop=12, max_offset=8, key=key,
                                 mask=mask)
    assert masked == pytest.approx(per[:5].mean())


def test_diagonal_accuracy_of_constant_classifier_equals_its_accuracy(images):
    labels = np.random.default_rng(3).integers(0, K, size=16).astype(np.int32)
    out = jq.diagonal_shift_accuracy(ignores_input, images, labels, crop=12, offsets=range(9))
    expected = 100.0 * np.mean(labels == K - 1)  # argmax of arange(K) is K - 1
    np.testing.assert_allclose(out["accuracy"], expected)
    assert out["mean"] == pytest.approx(expected) and out["count"] == 16
    assert list(out["offsets"]) == list(range(9))


def test_diagonal_accuracy_per_offset_is_exact(images):
    """reads_top_left at offset o reads pixel (o, o): compare with a direct computation."""
    labels = np.zeros(16, np.int32)
    out = jq.diagonal_shift_accuracy(reads_top_left, images, labels, crop=12,
                                     offsets=[0, 3, 8])
    img = np.asarray(images)
    want = [100.0 * np.mean(img[:, o, o, 0] >= 0) for o in (0, 3, 8)]
    np.testing.assert_allclose(out["accuracy"], want)
    np.testing.assert_array_equal(out["correct"], np.round(np.array(want) * 16 / 100))


def test_bad_input(images):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="crop"):
        jq.crop_consistency(ignores_input, images, crop=24, key=key)
    with pytest.raises(ValueError, match="max_offset"):
        jq.crop_consistency(ignores_input, images, crop=12, max_offset=10, key=key)
    with pytest.raises(TypeError, match="key"):
        jq.crop_consistency(ignores_input, images, crop=12, max_offset=4)
    with pytest.raises(ValueError, match="images"):
        jq.circular_consistency(ignores_input, images[0], key=key)
    with pytest.raises(ValueError, match="crop"):
        jq.diagonal_shift_accuracy(ignores_input, images, np.zeros(16, np.int32), crop=21)
    with pytest.raises(ValueError, match="offset"):
        jq.diagonal_shift_accuracy(ignores_input, images, np.zeros(16, np.int32), crop=12,
                                   offsets=range(10))
    with pytest.raises(ValueError, match="labels"):
        jq.diagonal_shift_accuracy(ignores_input, images, np.zeros(3, np.int32), crop=12)
    with pytest.raises(ValueError, match="predict_fn"):
        jq.crop_consistency(lambda b: b[:, 0, 0, 0], images, crop=12, max_offset=4, key=key)
