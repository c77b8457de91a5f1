"""jaxeq's own programs compile with the measured CPU options, per compile, never through
XLA_FLAGS; the user's flags and JAXEQ_NO_XLA_DEFAULTS win."""
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeq import xla_options

OPTION = "xla_cpu_experimental_ynn_fusion_type"
FLAGS_AT_START = os.environ.get("XLA_FLAGS", "")


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are CPU options")
def test_jaxeq_programs_compile_without_ynn_fusion_while_the_users_keep_xlas_default(monkeypatch):
    monkeypatch.delenv("JAXEQ_NO_XLA_DEFAULTS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")  # jaxeq passes its option per compile, whatever is set
    assert xla_options.compiler_options("cpu") == {OPTION: ""}
    x, w = jnp.ones((2, 16, 16, 32)), jnp.ones((3, 3, 32, 32))
    ours = xla_options.jit(_conv).lower(x, w).compile().as_text()
    assert "__ynn_fusion" not in ours
    np.testing.assert_allclose(xla_options.jit(_conv)(x, w), jax.jit(_conv)(x, w), rtol=1e-5)
    if OPTION not in FLAGS_AT_START:  # the process runs with XLA's defaults: fusion on
        assert "__ynn_fusion" in jax.jit(_conv).lower(x, w).compile().as_text()


def test_user_flags_and_the_off_switch_win(monkeypatch):
    monkeypatch.delenv("JAXEQ_NO_XLA_DEFAULTS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert xla_options.compiler_options("cpu") == {OPTION: ""}
    assert xla_options.compiler_options("gpu") is None
    monkeypatch.setenv("XLA_FLAGS", f"--{OPTION}=default")
    assert xla_options.compiler_options("cpu") is None
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("JAXEQ_NO_XLA_DEFAULTS", "1")
    assert xla_options.compiler_options("cpu") is None


def test_every_jitted_program_of_the_library_goes_through_the_options():
    root = pathlib.Path(xla_options.__file__).parent
    offenders = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
                 if "bench" not in p.parts
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if "jax.jit(" in line or line.strip() == "@jax.jit"]
    # the dispatch itself; one-off initialisations (nothing to tune); the position study is a
    # script of the CLI, which sets XLA_FLAGS itself
    allowed = {"xla_options.py", "weights.py", "train/prepare.py",
               "experiments/position_probe.py"}
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []


def test_a_program_called_inside_another_trace_runs_as_a_plain_jit(monkeypatch):
    monkeypatch.delenv("JAXEQ_NO_XLA_DEFAULTS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    inner = xla_options.jit(lambda v: jnp.sin(v) * 2)
    x = jnp.arange(4.0)
    expected = np.sin(np.arange(4.0)) * 2
    np.testing.assert_allclose(inner(x), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda v: inner(v) + 1)(x), expected + 1, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda: inner(np.arange(4.0)))(), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(inner)(x[:, None])[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda v: inner(v).sum())(x), 2 * np.cos(np.arange(4.0)),
                               rtol=1e-6)
    assert jax.eval_shape(inner, x).shape == (4,)
    with pytest.raises(ValueError, match="not a compile option"):  # other errors go through
        xla_options.jit(_raises)(x)


def _raises(v):
    raise ValueError("not a compile option")
