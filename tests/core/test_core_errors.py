"""Bad input to the core functions fails early with a message naming the argument."""
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq

X = np.zeros((1, 8, 8, 4), np.float32)
K = np.zeros((3, 3, 4, 6), np.float32)


@pytest.mark.parametrize("call,exc,words", [
    (lambda: jq.conv(X, K, padding="circular"), ValueError, ["padding", "valid", "same", "full"]),
    (lambda: jq.conv(X, K, padding=1), TypeError, ["padding", "bare int"]),
    (lambda: jq.conv(X, K, fill="wrap"), ValueError, ["fill", "zeros", "circular", "reflect"]),
    (lambda: jq.conv(X, K, stride=0), ValueError, ["stride", ">= 1"]),
    (lambda: jq.conv(X, K, dilation=-1), ValueError, ["dilation"]),
    (lambda: jq.conv(X, K, stride=(1, 2, 3)), ValueError, ["stride", "2 entries"]),
    (lambda: jq.conv(X, K, stride=1.5), TypeError, ["stride"]),
    (lambda: jq.conv(X, np.zeros((9, 9, 4, 6)), padding="valid"), ValueError,
     ["kernel_size", "larger than the padded input"]),
    (lambda: jq.conv(X, np.zeros((3, 3, 2, 6)), groups=3), ValueError, ["groups=3", "divide"]),
    (lambda: jq.conv(X, np.zeros((3, 3, 2, 6)), groups=1), ValueError, ["input channels"]),
    (lambda: jq.conv(X, K, groups=0), ValueError, ["groups"]),
    (lambda: jq.conv(X[0], K), ValueError, ["x", "rank 4"]),
    (lambda: jq.conv(X, K[0]), ValueError, ["kernel"]),
    (lambda: jq.conv(X, K, bias=np.zeros(4)), ValueError, ["bias", "(6,)"]),
    (lambda: jq.conv(X, K, padding=((1, 1),)), ValueError, ["padding", "2 (lo, hi) pairs"]),
    (lambda: jq.conv(X, K, padding=((1, -1), (0, 0))), ValueError, ["padding", ">= 0"]),
    (lambda: jq.pad(X, ((8, 8), (0, 0)), "reflect"), ValueError, ["reflect", "input size"]),
    (lambda: jq.pad(X, ((1, 1), (1, 1)), "mirror"), ValueError, ["fill"]),
    (lambda: jq.max_pool(X, 2, fill="bogus"), ValueError, ["fill", "neutral"]),
    (lambda: jq.max_pool(X, 0), ValueError, ["window"]),
    (lambda: jq.avg_pool(X, 3, stride=0), ValueError, ["stride"]),
    (lambda: jq.blur_pool(X, filter_size=8), ValueError, ["filter_size", "1..7"]),
    (lambda: jq.aps_pool(X, norm="linf"), ValueError, ["norm", "l1", "l2"]),
    (lambda: jq.aps_pool(np.zeros((1, 7, 8, 2)), stride=2), ValueError, ["multiple of stride"]),
    (lambda: jq.global_max_pool(np.zeros((3, 4))), ValueError, ["x", "spatial"]),
    (lambda: jq.roll(X, (1.5, 0.0)), TypeError, ["shift", "integers"]),
    (lambda: jq.roll(X, jnp.array([1.0, 2.0])), TypeError, ["shift", "integers"]),
    (lambda: jq.translate(X, (1, 2, 3)), ValueError, ["shift", "shape (2,)"]),
    (lambda: jq.crop(X, (6, 0), 4), ValueError, ["outside the image"]),
    (lambda: jq.crop(X, (-1, 0), 4), ValueError, ["outside the image"]),
    (lambda: jq.crop(X, (0, 0), 9), ValueError, ["size", "larger than the image"]),
    (lambda: jq.shift_grid(-1), ValueError, ["max_shift"]),
    (lambda: jq.shift_grid(2, step=0), ValueError, ["step"]),
    (lambda: jq.padding_pairs("same", 3, dilation=0), ValueError, ["dilation"]),
    (lambda: jq.chain(jq.global_max_pool, 3), TypeError, ["argument 1", "callable"]),
])
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize("low", [jnp.float16, jnp.bfloat16])
def test_conv_promotes_a_half_precision_input_with_a_float32_kernel(low):
    rng = np.random.default_rng(0)
    x, k = rng.normal(size=(1, 6, 6, 4)), rng.normal(size=(3, 3, 4, 2))
    y = jq.conv(jnp.asarray(x, low), jnp.asarray(k, jnp.float32))
    assert y.dtype == jnp.float32  # the wider of the two, as jnp's promotion gives
    want = jq.conv(jnp.asarray(jnp.asarray(x, low), jnp.float32), jnp.asarray(k, jnp.float32))
    np.testing.assert_array_equal(y, want)
    assert jq.conv(jnp.asarray(x, low), jnp.asarray(k, low)).dtype == low  # unchanged
