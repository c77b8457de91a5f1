"""Configuration shared by every jaxeq model: argument checks and the pieces all heads use."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxeq import _checks
from jaxeq.nn import check_padding
from jaxeq.padding import FILLS
from jaxeq.pool import global_avg_pool, global_max_pool

GLOBAL_POOLS = ("avg", "max")
DTYPES = ("float32", "bfloat16", "float16", "float64")  # float64 needs jax_enable_x64


def check_dtype(name: str, dtype: Any) -> None:
    try:
        dt = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name} must be one of {DTYPES}, got {dtype!r}") from err
    if dt.name not in DTYPES:
        raise ValueError(f"{name} must be one of {DTYPES}, got {dtype!r}")


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def global_pool(x, mode: str):
    """(N, *spatial, C) -> (N, C) by "avg" or "max"."""
    return global_avg_pool(x) if mode == "avg" else global_max_pool(x)


class Model(nn.Module):
    """Fields every model shares; subclasses extend ``check()`` and define ``feature_strides``."""
    num_classes: int = 1000
    padding: str = "same"
    fill: str = "zeros"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None

    def __post_init__(self):
        self.check()
        super().__post_init__()

    def check(self) -> None:
        """Validate the static configuration (called on construction)."""
        check_padding(self.padding)
        _checks.choice("fill", self.fill, FILLS)
        check_positive_int("num_classes", self.num_classes)
        check_dtype("dtype", self.dtype)
        check_dtype("param_dtype", self.param_dtype)
        if self.bn_axis_name is not None and not isinstance(self.bn_axis_name, str):
            raise TypeError(f"bn_axis_name must be None or a str, got {self.bn_axis_name!r}")

    def logits(self, x):
        """Final classifier named ``head``. Logits come back in ``dtype`` promoted to at least
        float32 (bfloat16/float16 compute gives float32 logits for the loss; float64 stays
        float64), never demoted."""
        from jaxeq.nn import Dense  # local: keeps the class body free of layer imports
        y = Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                  name="head")(x)
        return jnp.asarray(y, jnp.promote_types(self.dtype, jnp.float32))

    def feature_strides(self) -> dict[str, tuple[int, ...]]:  # pragma: no cover - abstract
        raise NotImplementedError
