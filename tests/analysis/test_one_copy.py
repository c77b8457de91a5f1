"""One device-to-host copy for a program's results: exact round trip of every leaf."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeq.analysis.one_copy import one_copy


def _results(x, scale):
    return {"stats": {"sum": jnp.sum(x, axis=-1), "max": jnp.max(x)},
            "in_group": x[:, 0] > 0, "scaled": (x * scale).astype(jnp.bfloat16), "empty": x[:0]}


def test_every_leaf_comes_back_exactly_with_its_dtype_and_shape():
    x = jax.random.normal(jax.random.key(0), (5, 7), jnp.float32)
    want = jax.device_get(jax.jit(_results)(x, 3.0))
    got = one_copy(_results)(x, 3.0)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert isinstance(g, np.ndarray) and g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_the_program_returns_one_array():
    x = jnp.ones((3, 4))
    out = one_copy(_results).lower(x, 1.0).out_info
    assert len(jax.tree_util.tree_leaves(out)) == 1


def test_each_shape_keeps_its_own_layout_across_cached_calls():
    # shape A traced, then B, then A again from jit's cache: A's layout must be used
    call = one_copy(lambda x: {"rows": jnp.sum(x, 1), "total": jnp.sum(x)})
    a, b = jnp.arange(6.0).reshape(2, 3), jnp.arange(12.0).reshape(4, 3)
    call(a), call(b)
    again = call(a)
    np.testing.assert_array_equal(again["rows"], [3.0, 12.0])
    assert again["total"] == 15.0


def test_float64_leaves_widen_the_pack_without_rounding():
    with jax.enable_x64(True):
        x = jnp.asarray([1.0 + 2.0 ** -40, 3.0], jnp.float64)
        got = one_copy(lambda v: {"wide": v, "narrow": v.astype(jnp.float32), "pos": v > 2})(x)
    assert got["wide"].dtype == np.float64 and got["wide"][0] == 1.0 + 2.0 ** -40
    assert got["narrow"].dtype == np.float32 and got["pos"].tolist() == [False, True]


def test_integer_results_are_refused_by_name():
    with pytest.raises(TypeError, match="float and bool results only, got int32"):
        one_copy(lambda v: jnp.argmax(v))(jnp.ones(3))
