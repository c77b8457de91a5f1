"""Platform fast paths for the math of :mod:`jaxeq.conv`, :mod:`jaxeq.pool` and
:class:`jaxeq.nn.BatchNorm`, behind one dispatch.

Each op keeps its plain ``jax.lax`` form in its own module as the readable reference; a fast path
registered here computes the same values (bitwise for the convolution, to rounding for
BatchNorm and the depthwise convolution; tests/kernels compares each one with its reference)
and is arranged for what a backend's compiler does well. The math modules ask :func:`select`
for the op and fall back to their plain form when it returns None.

=================  ========  ================================================================
op                 backend   fast path
=================  ========  ================================================================
``conv``           cpu       the weight gradient reads its input through an identity GEMM
                             (:mod:`jaxeq.kernels.conv_relayout`)
``depthwise_conv`` cpu       a weighted sum of strided slices, one per kernel offset
                             (:mod:`jaxeq.kernels.depthwise_slices`)
``max_pool``       any       max over strided slices, PyTorch's first-maximum gradient
                             (:mod:`jaxeq.kernels.slice_max`)
``batch_norm``     any       train-mode statistics with a hand-written one-pass backward
                             (:mod:`jaxeq.kernels.batch_norm`)
``batch_norm``     cpu       the same; from 256 channels its backward sums are GEMVs (XLA:CPU
                             fuses dy's producers into a reduction, never into a dot)
=================  ========  ================================================================
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from jaxeq import _checks

ANY = "any"

# (op, backend) -> "module:function"; a backend of ANY serves every backend without its own
# entry. Modules are imported on first use, so importing jaxeq loads none of them.
_FAST_PATHS: dict[tuple[str, str], str] = {
    ("conv", "cpu"): "jaxeq.kernels.conv_relayout:conv",
    ("depthwise_conv", "cpu"): "jaxeq.kernels.depthwise_slices:depthwise_conv",
    ("max_pool", ANY): "jaxeq.kernels.slice_max:max_pool",
    ("batch_norm", "cpu"): "jaxeq.kernels.batch_norm:batch_norm_train_cpu",
    ("batch_norm", ANY): "jaxeq.kernels.batch_norm:batch_norm_train",
}

OPS = tuple(sorted({op for op, _ in _FAST_PATHS}))


def select(op: str, backend: str | None = None) -> Callable | None:
    """The fast path of ``op`` on ``backend`` (default: JAX's default backend), or None when
    the op's plain form is the one to use there."""
    _checks.choice("op", op, OPS)
    if backend is None:
        import jax
        backend = jax.default_backend()
    target = _FAST_PATHS.get((op, backend)) or _FAST_PATHS.get((op, ANY))
    if target is None:
        return None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)
