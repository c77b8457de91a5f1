"""What every jaxeq model shares: argument checks, the layers injected into blocks, the head."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxeq import _checks
from jaxeq.nn import BatchNorm, Conv, Dense
from jaxeq.padding import FILLS, PADDINGS
from jaxeq.pool import global_avg_pool, global_max_pool

# A layer constructor injected into a block: a flax Module class or a functools.partial of one.
ModuleDef = Callable[..., nn.Module]
GLOBAL_POOLS = ("avg", "max")
DTYPES = ("float32", "bfloat16", "float16", "float64")  # float64 needs jax_enable_x64


def check_dtype(name: str, dtype: Any) -> None:
    try:
        dt = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name} must be one of {DTYPES}, got {dtype!r}") from err
    if dt.name not in DTYPES:
        raise ValueError(f"{name} must be one of {DTYPES}, got {dtype!r}")


def check_padding(padding: Any) -> None:
    """Model-level check: ``padding`` must be a mode name (models never take raw pairs)."""
    _checks.choice("padding", padding, PADDINGS)


def global_pool(x, mode: str):
    """(N, *spatial, C) -> (N, C) by "avg" or "max"."""
    return global_avg_pool(x) if mode == "avg" else global_max_pool(x)


class Block(nn.Module):
    """A block built from injected layers (:meth:`Model.block_layers`): ``conv`` and ``norm``
    constructors, and the model's ``padding`` and ``fill``, with which the block aligns what
    it adds or concatenates to its branch (:func:`jaxeq.padding.shortcut_pad`)."""
    conv: ModuleDef
    norm: ModuleDef
    padding: Any
    fill: Any


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
        _checks.int_at_least("num_classes", self.num_classes, 1)
        check_dtype("dtype", self.dtype)
        check_dtype("param_dtype", self.param_dtype)
        if self.bn_axis_name is not None and not isinstance(self.bn_axis_name, str):
            raise TypeError(f"bn_axis_name must be None or a str, got {self.bn_axis_name!r}")

    def logits(self, x):
        """Final classifier named ``head``. Logits come back in ``dtype`` promoted to at least
        float32 (bfloat16/float16 compute gives float32 logits for the loss; float64 stays
        float64), never demoted."""
        y = Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                  name="head")(x)
        return jnp.asarray(y, jnp.promote_types(self.dtype, jnp.float32))

    def block_layers(self, kernel_init, padding: Any = None, fill: Any = None) -> dict:
        """The layers injected into this model's blocks (:class:`Block`'s fields): ``conv``
        (:class:`jaxeq.nn.Conv` with ``padding``, ``fill``, the dtypes and ``kernel_init``
        bound), ``norm`` (:class:`jaxeq.nn.BatchNorm` with the dtypes and ``bn_axis_name``),
        ``padding`` and ``fill`` (default: the model's; either may be one per spatial dim)."""
        padding = self.padding if padding is None else padding
        fill = self.fill if fill is None else fill
        conv = partial(Conv, padding=padding, fill=fill, dtype=self.dtype,
                       param_dtype=self.param_dtype, kernel_init=kernel_init)
        norm = partial(BatchNorm, dtype=self.dtype, param_dtype=self.param_dtype,
                       axis_name=self.bn_axis_name)
        return dict(conv=conv, norm=norm, padding=padding, fill=fill)

    def feature_strides(self) -> dict[str, tuple[int, ...]]:  # pragma: no cover - abstract
        raise NotImplementedError
