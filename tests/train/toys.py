"""Test fixtures for the trainer: a tiny model and an in-memory data source that train in seconds.

The trainer's tests (including the multi-process ones, which import this module in
subprocesses) use them instead of the model and data registries: ``ToySource`` follows the data
contract (``len``, ``source[i] -> {"image", "label"}``, ``num_classes``) and ``TinyNet`` the
model contract (``train`` flag, BatchNorm statistics in 'batch_stats', classifier named 'head').
"""
from __future__ import annotations

import time

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class TinyNet(nn.Module):
    """conv 3x3 -> [BatchNorm] -> ReLU -> flatten -> Dense 'head'."""
    features: int = 4
    num_classes: int = 2
    use_bn: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.features, (3, 3), padding="SAME", dtype=self.dtype, name="conv")(x)
        if self.use_bn:
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                             name="bn")(x)
        x = nn.relu(x).reshape((x.shape[0], -1))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)


class ToySource:
    """Where is the bright 2x2 block? left half -> 0, right half -> 1; plus noise.

    ``nan_index``: that sample's image is NaN (to test the non-finite stop). ``delay_s``: each
    ``__getitem__`` sleeps, so a subprocess can be killed mid-epoch reliably (no extra CPU).
    """
    num_classes = 2

    def __init__(self, n: int = 64, size: int = 8, seed: int = 0, nan_index: int | None = None,
                 delay_s: float = 0.0):
        rng = np.random.default_rng(seed)
        self.labels = (np.arange(n) % 2).astype(np.int32)
        self.images = 0.1 * rng.standard_normal((n, size, size, 1)).astype(np.float32)
        half = size // 2
        for i, y in enumerate(self.labels):
            r = rng.integers(0, size - 1)
            c = rng.integers(0, half - 1) + half * int(y)
            self.images[i, r:r + 2, c:c + 2, 0] += 1.0
        if nan_index is not None:
            self.images[nan_index] = np.nan
        self.delay_s = delay_s

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        if self.delay_s:
            time.sleep(self.delay_s)
        return {"image": self.images[i], "label": self.labels[i]}


def toy_sources(n_train: int = 64, n_eval: int = 32, size: int = 8, **train_kwargs) -> dict:
    """{'train', 'val', 'test'} toy sources with distinct seeds."""
    return {"train": ToySource(n_train, size, seed=0, **train_kwargs),
            "val": ToySource(n_eval, size, seed=1), "test": ToySource(n_eval, size, seed=2)}


def toy_config(**overrides):
    """A default_config() for the toys: SGD, batch 8, 2 epochs, quiet."""
    from jaxeq.train.config import default_config
    c = default_config()
    c.model.name = "tiny_net"
    c.data.name = "toy"
    c.optimizer.lr = 0.05
    c.batch_size = 8
    c.epochs = 2
    c.log_every_steps = 1
    c.checkpoint_every_steps = 0
    c.progress = "off"
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c
