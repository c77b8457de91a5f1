"""Shared test set-up: strict numerics (as equinox) and a float64 fixture for exact checks."""
import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Run the test body with float64 enabled (for comparisons that must be exact)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def torch_or_skip():
    """Import torch or skip with the reason printed (CI installs torch==2.13.0, so it runs there)."""
    return pytest.importorskip("torch", reason="torch is not installed: pip install -e '.[test]'")
