"""jaxeq.train: one jitted, sharded trainer for 1 CPU, N devices, GPUs and TPU pods.

``fit(config, workdir) -> results`` trains a registry model on a registry data set (or a
module and sources passed in), resuming from the workdir's orbax checkpoints. See
``default_config()`` for every field. Importing this package changes no JAX configuration.
"""
from jaxeq.train.checkpoint import load_variables
from jaxeq.train.config import default_config, validate
from jaxeq.train.loop import NonFiniteLossError, fit

__all__ = ["NonFiniteLossError", "default_config", "fit", "load_variables", "validate"]
