"""Every analysis program traces the measured function at full float32 precision, so TF32 on
GPUs or bf16 passes on TPUs never enter a measurement as broken equivariance."""
import jax
import jax.numpy as jnp
import numpy as np

import jaxeq as jq
from jaxeq.analysis import engine, precision
from jaxeq.compose import chain, layer


def test_engine_measures_at_highest_precision_whatever_the_callers_default():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(1, 8, 8, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 2)), jnp.float32)
    shifts = jq.shift_grid(2)
    calls = {
        "equivariance_error": lambda f: jq.equivariance_error(f, x, shifts, out_stride=1,
                                                              batching="batch"),
        "invariance_error (vmap)": lambda f: jq.invariance_error(f, x, shifts, batching="vmap"),
        "shifted_apply": lambda f: engine.shifted_apply(f)(x, jnp.asarray(shifts)),
        "layerwise_equivariance": lambda f: jq.layerwise_equivariance(
            chain(layer(f, name="conv")), None, x, shifts),
    }
    for name, call in calls.items():
        seen = []  # the precision of every trace of a fresh f (shape checks come first)

        def f(v):
            seen.append(jax.config.jax_default_matmul_precision)
            return jq.conv(v, w, padding="full", fill="circular")

        with jax.default_matmul_precision("bfloat16"):  # a caller who asked for fast matmuls
            call(f)
        assert seen and seen[-1] == precision.MEASURE_PRECISION == "highest", (name, seen)
    # the caller's own setting is untouched outside the measurement
    assert jax.config.jax_default_matmul_precision is None


def test_full_float32_wrapper_sets_and_restores_the_precision():
    got = precision.full_float32(lambda: jax.config.jax_default_matmul_precision)()
    assert got == "highest" and jax.config.jax_default_matmul_precision is None
