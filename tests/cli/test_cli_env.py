"""The jaxeq command sets its measured XLA flags before JAX starts; import jaxeq never does."""
import os
import subprocess
import sys

from jaxeq.cli import xla_env

YNN = "--xla_cpu_experimental_ynn_fusion_type="
PROBE = ("import os; from jaxeq import cli; "
         "rc = cli.main(['data', 'info', 'red_green', '--split', 'val', '--kw', 'size=4']); "
         "print('FLAGS=' + os.environ.get('XLA_FLAGS', '<unset>'))")


def _flags_seen_by_cli(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXEQ_NO_XLA_DEFAULTS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env, "JAX_PLATFORMS": "cpu"},
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return next(line[6:] for line in out.splitlines() if line.startswith("FLAGS="))


def test_cli_adds_ynn_off_and_keeps_user_flags():
    flags = _flags_seen_by_cli(XLA_FLAGS="--xla_force_host_platform_device_count=1")
    assert flags.split() == ["--xla_force_host_platform_device_count=1", YNN]


def test_cli_defaults_can_be_turned_off():
    assert _flags_seen_by_cli(JAXEQ_NO_XLA_DEFAULTS="1") in ("", "<unset>")


def test_import_jaxeq_leaves_xla_flags_alone():
    code = "import os, jaxeq, jaxeq.models, jaxeq.train; print('FLAGS=' + os.environ.get('XLA_FLAGS', '<unset>'))"
    base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "FLAGS=<unset>" in out


def test_apply_defaults_refuses_once_a_backend_runs():
    import jax
    import pytest
    jax.devices()
    with pytest.raises(RuntimeError, match="before JAX initialises"):
        xla_env.apply_defaults()
