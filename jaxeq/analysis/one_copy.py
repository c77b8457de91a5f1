"""Bring an analysis program's results to the host in one device-to-host copy.

A measurement returns many small arrays (eight statistics per measured output and shift, for
every layer of a layer table). ``jax.device_get`` copies each leaf on its own; on a GPU each
copy waits a round trip, which cost a warm ``jq.invariance_error`` of ResNet-18 more host time
than the device spent on its whole forward pass (BENCHMARKS.md, "On a GPU"). Here the program
concatenates its leaves on the device into one flat array of their widest float type, and the
host splits that array back. The widening is exact: booleans become 0 / 1, a narrower float
widens without rounding, and each leaf is cast back to its own dtype.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.api_util import shaped_abstractify


def signature(tree: Any) -> tuple:
    """What a trace of ``tree`` depends on, hashable: its structure and each leaf's (shape,
    dtype as JAX canonicalizes it, weak type); the same for concrete values and for the
    tracers that stand for them."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple(_abstract(leaf) for leaf in leaves)


def _abstract(leaf: Any) -> tuple:
    if isinstance(leaf, jax.core.Tracer):
        aval = leaf.aval
    elif isinstance(leaf, jax.Array):  # already canonical: read it without building an aval
        return leaf.shape, leaf.dtype, leaf.weak_type
    else:
        aval = shaped_abstractify(leaf)
    return aval.shape, aval.dtype, aval.weak_type


def _wide_dtype(dtypes: list) -> np.dtype:
    for d in dtypes:
        if not (d == np.bool_ or jnp.issubdtype(d, jnp.floating)):
            raise TypeError(f"one_copy packs float and bool results only, got {d}")
    floats = [d for d in dtypes if d != np.bool_]
    return np.dtype(jnp.result_type(jnp.float32, *floats))


def one_copy(fn: Callable, jit: Callable = jax.jit) -> Callable:
    """``jit`` of ``fn`` whose call returns ``fn``'s output pytree as numpy arrays, brought to
    the host in one copy. ``fn``'s leaves must be float or bool arrays."""
    layouts: dict = {}

    def packed(*args):
        out = fn(*args)
        leaves, treedef = jax.tree_util.tree_flatten(out)
        dtypes = [np.dtype(leaf.dtype) for leaf in leaves]
        wide = _wide_dtype(dtypes)
        # recorded while tracing, keyed by what the trace depends on: a later call with the same
        # shapes hits jit's cache and finds its own layout here
        bounds = np.cumsum([0] + [int(np.prod(leaf.shape, dtype=np.int64)) for leaf in leaves])
        layouts[signature(args)] = (treedef, [(int(a), int(b), tuple(leaf.shape), d) for a, b, leaf, d
                                              in zip(bounds[:-1], bounds[1:], leaves, dtypes)])
        if not leaves:
            return jnp.zeros((0,), wide)
        return jnp.concatenate([jnp.ravel(leaf).astype(wide) for leaf in leaves])

    compiled = jit(packed)

    @functools.wraps(fn)
    def call(*args):
        flat = np.asarray(compiled(*args))
        # With one layout recorded so far, this call used it: a call with another signature
        # would have traced and recorded a second one. Else find this call's own.
        only = len(layouts) == 1
        treedef, specs = next(iter(layouts.values())) if only else layouts[signature(args)]
        return jax.tree_util.tree_unflatten(treedef, [
            flat[a:b].reshape(shape).astype(dtype, copy=False) for a, b, shape, dtype in specs])

    call.lower = compiled.lower  # the packed program, for its HLO and cost analysis
    return call
