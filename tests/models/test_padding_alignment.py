"""Residual alignment (:mod:`jaxeq.padding`): shortcut pads of the F-Conv ResNet, the pad or
crop of a block input, and per-dim padding modes and fills as the 3-D ResNet uses them."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeq import nn as jnn
from jaxeq import padding


def test_shortcut_pads_of_fconv_resnet():
    full = "full"
    # SPEC.md "F-Conv ResNet, exactly"
    assert padding.shortcut_pad([(3, 1, full), (3, 1, full)]) == 2
    assert padding.shortcut_pad([(3, 2, full), (3, 1, full)], [(1, 2, full)]) == 3
    assert padding.shortcut_pad([(1, 1, full), (3, 1, full), (1, 1, full)]) == 1
    assert padding.shortcut_pad([(1, 1, full), (3, 2, full), (1, 1, full)], [(1, 2, full)]) == 1
    assert padding.shortcut_pad([(3, 2, "same"), (3, 1, "same")], [(1, 2, "same")]) == 0
    assert padding.shortcut_pad([(3, 1, "valid"), (3, 1, "valid")]) == -2


def test_pad_or_crop_start_and_crop_end():
    x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    p = padding.pad_or_crop_start(x, 2)
    assert p.shape == (1, 9, 9, 1) and float(p[0, 2, 2, 0]) == 0.0 and float(p[0, 0, 0, 0]) == 0
    c = padding.pad_or_crop_start(x, -1)
    assert c.shape == (1, 4, 4, 1) and float(c[0, 0, 0, 0]) == 6.0
    e = padding.crop_end_to(x, (3, 3))
    assert e.shape == (1, 3, 3, 1) and float(e[0, -1, -1, 0]) == 12.0
    with pytest.raises(ValueError, match="crop"):
        padding.crop_end_to(x, (6, 6))


def test_per_dim_modes_and_fills_equal_padding_each_dim_apart():
    assert padding.padding_pairs(("same", "full", "valid"), (3, 3, 3)) == ((1, 1), (2, 2), (0, 0))
    x = jax.random.normal(jax.random.key(0), (1, 4, 5, 6, 2))
    pairs = ((1, 1), (2, 2), (0, 1))
    want = padding.pad(padding.pad(x, ((1, 1), (0, 0), (0, 0)), "circular"),
                       ((0, 0), (2, 2), (0, 1)), "zeros")
    got = padding.pad(x, pairs, ("circular", "zeros", "zeros"))
    np.testing.assert_array_equal(got, want)
    conv = jnn.Conv(3, 3, padding=("same", "full", "full"), fill=("circular", "zeros", "zeros"))
    v = conv.init(jax.random.key(1), x)
    ref = jnn.Conv(3, 3, padding="valid").apply(
        v, padding.pad(x, ((1, 1), (2, 2), (2, 2)), ("circular", "zeros", "zeros")))
    np.testing.assert_allclose(conv.apply(v, x), ref, rtol=1e-6, atol=1e-6)
    pool = jnn.MaxPool(3, strides=2, padding="same", fill=("circular", "neutral", "neutral"))
    y = pool.apply({}, -jnp.abs(x))
    assert y.shape == (1, 2, 3, 3, 2) and bool(jnp.all(y <= 0))
    with pytest.raises(ValueError, match="fill"):
        padding.pad(x, pairs, ("circular", "zeros"))
