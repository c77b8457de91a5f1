"""fit starts from a local pretrained checkpoint (config.init_weights): E1's pretrained_frozen."""
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeq import models, weights
from jaxeq.train import default_config, fit
from jaxeq.train.checkpoint import load_variables


def _torch_style_checkpoint(path, model_name, seed=3):
    """A random checkpoint with PyTorch names and layouts (OIHW kernels) for ``model_name``."""
    model = models.get(model_name, padding="same")
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
                                               train=False))
    rng = np.random.default_rng(seed)
    state, expected = {}, {}
    for path_, leaf in flax.traverse_util.flatten_dict(dict(shapes)).items():
        value = rng.normal(size=leaf.shape).astype(np.float32)
        expected[path_] = value
        if path_[-1] == "kernel":  # flax (*k, in, out) / (in, out) -> torch (out, in, *k)
            value = value.T if value.ndim == 2 else np.transpose(
                value, (value.ndim - 1, value.ndim - 2) + tuple(range(value.ndim - 2)))
        key = f"{weights.torch_prefix(model_name, path_[1:-1])}.{weights._LEAF[path_[-1]]}"
        state[key] = value
    np.savez(path, **state)
    return expected


def test_init_weights_load_everything_but_the_head(tmp_path):
    expected = _torch_style_checkpoint(tmp_path / "pre.npz", "red_green_net")
    c = default_config()
    c.model.name = "red_green_net"
    c.model.kwargs = {"padding": "same"}
    c.data.name = "red_green"
    c.data.kwargs = {"size": 16}
    c.batch_size = 8
    c.epochs = 1
    c.trainable = "head"
    c.init_weights = str(tmp_path / "pre.npz")
    c.progress = "off"
    fit(c, tmp_path / "run")
    got = flax.traverse_util.flatten_dict(load_variables(tmp_path / "run", "latest"))
    for path_, value in expected.items():
        if path_[1] == "head":  # a fresh, trained classifier
            assert not np.allclose(got[path_], value)
        else:  # frozen and loaded: exactly the checkpoint's values
            np.testing.assert_array_equal(got[path_], value)


def test_init_weights_missing_file_is_a_clear_error(tmp_path):
    c = default_config()
    c.model.name = "red_green_net"
    c.data.name = "red_green"
    c.data.kwargs = {"size": 16}
    c.batch_size = 8
    c.init_weights = str(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="init_weights"):
        fit(c, tmp_path / "run")
