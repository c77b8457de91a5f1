"""The arithmetic every analysis program measures in: float32 at full precision.

Accelerators round float32 matmul and convolution operands by default: TF32 (10 mantissa bits)
on NVIDIA GPUs from Ampere on, one bfloat16 pass on TPUs. That moves a model's outputs by
1e-4 to 1e-3 of their size, differently for a batch than for a single image, so a measurement
would report rounding as broken equivariance, and the engine's batch-independence check would
take a batch-independent model for a dependent one (measured on an H200: BENCHMARKS.md, "On a
GPU"). So the analysis traces the function it measures under ``jax.default_matmul_precision
("highest")``: on a CPU, where float32 is already computed in full, nothing changes. A layer
that sets its own ``precision`` keeps it.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

from jaxeq import xla_options

MEASURE_PRECISION = "highest"


def full_float32(fn: Callable) -> Callable:
    """``fn`` traced with float32 matmuls and convolutions at :data:`MEASURE_PRECISION`."""

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        with jax.default_matmul_precision(MEASURE_PRECISION):
            return fn(*args, **kwargs)

    return traced


def measure_jit(fn: Callable, **kwargs: Any) -> Callable:
    """:func:`jaxeq.xla_options.jit` of ``fn`` traced at full float32 precision."""
    return xla_options.jit(full_float32(fn), **kwargs)
