"""Padding modes of the paper as explicit ``(lo, hi)`` pairs, and fills that apply them.

The sampling grid is decided by ``padding`` alone ("valid", "same", "full" or explicit pairs);
``fill`` only decides the values written into the pad. Pairs equal PyTorch's for the same layer,
so weights move between the two frameworks unchanged.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxeq import _checks

PADDINGS = ("valid", "same", "full")
FILLS = ("zeros", "circular", "reflect", "replicate")

Pairs = tuple[tuple[int, int], ...]

_JNP_MODE = {"zeros": "constant", "circular": "wrap", "reflect": "reflect", "replicate": "edge"}


def effective_kernel(kernel_size: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: ``dilation * (k - 1) + 1``."""
    return dilation * (kernel_size - 1) + 1


def _infer_ndim(*values: Any) -> int:
    for v in values:
        if isinstance(v, Sequence) and not isinstance(v, str):
            return len(v)
    return 1


def padding_pairs(padding: Any, kernel_size: Any, *, stride: Any = 1, dilation: Any = 1,
                  input_size: Any = None, ndim: int | None = None) -> Pairs:
    """One ``(lo, hi)`` pair per spatial dim for a layer with this kernel, stride and dilation.

    - ``"valid"``: no padding.
    - ``"same"``: ``lo = (k_eff - 1) // 2``, ``hi = k_eff - 1 - lo``. At stride 1 this is
      PyTorch's ``padding="same"`` (an even kernel puts the extra pixel at the end); at stride
      ``s`` it is the symmetric ``k // 2`` that torchvision writes for odd kernels, giving
      ``ceil(n / s)`` outputs. It never depends on ``input_size``.
    - ``"full"``: ``k_eff - 1`` on both sides (F-Conv): every input pixel meets every tap.
    - explicit pairs: a sequence of ``(lo, hi)`` non-negative ints, returned as a tuple.

    ``ndim`` defaults to the length of the first sequence among ``kernel_size``, ``stride``,
    ``dilation``, ``input_size``, else 1. With ``input_size``, it is checked that the padded input
    is at least as large as the effective kernel.
    """
    if ndim is None:
        explicit = padding if not isinstance(padding, str) else None
        ndim = _infer_ndim(kernel_size, stride, dilation, input_size, explicit)
    ks = _checks.positive_ints("kernel_size", kernel_size, ndim)
    strides = _checks.positive_ints("stride", stride, ndim)
    del strides  # "same" is symmetric whatever the stride (see docstring)
    dils = _checks.positive_ints("dilation", dilation, ndim)
    spans = [effective_kernel(k, d) for k, d in zip(ks, dils)]

    if isinstance(padding, str):
        _checks.choice("padding", padding, PADDINGS)
        if padding == "valid":
            pairs = tuple((0, 0) for _ in spans)
        elif padding == "same":
            pairs = tuple(((s - 1) // 2, s - 1 - (s - 1) // 2) for s in spans)
        else:
            pairs = tuple((s - 1, s - 1) for s in spans)
    else:
        pairs = explicit_pairs(padding, ndim)

    if input_size is not None:
        sizes = _checks.positive_ints("input_size", input_size, ndim)
        for n, (lo, hi), s in zip(sizes, pairs, spans):
            if n + lo + hi < s:
                raise ValueError(
                    f"kernel_size (effective {s}) is larger than the padded input "
                    f"({n} + {lo} + {hi}); use a larger input or padding='full'")
    return pairs


def explicit_pairs(padding: Any, ndim: int) -> Pairs:
    """Validate a sequence of ``(lo, hi)`` pairs (non-negative ints), one per spatial dim."""
    if isinstance(padding, (int, np.integer)):
        raise TypeError(
            f"padding must be one of {PADDINGS} or a sequence of (lo, hi) pairs, got the bare "
            f"int {padding!r}; write (({padding}, {padding}),) * ndim for explicit pads")
    try:
        pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                 for pair in padding for v in pair)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TypeError(
            f"padding must be one of {PADDINGS} or a sequence of (lo, hi) int pairs, "
            f"got {padding!r}")
    if len(pairs) != ndim:
        raise ValueError(f"padding must have {ndim} (lo, hi) pairs (one per spatial dim), "
                         f"got {len(pairs)}: {padding!r}")
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"padding pairs must be >= 0, got {padding!r}")
    return pairs


def pad(x: Any, pairs: Any, fill: str = "zeros", *, value: float = 0.0) -> jnp.ndarray:
    """Pad the spatial dims of an ``(N, *spatial, C)`` array.

    ``fill``: ``"zeros"`` (the constant ``value``, 0 by default), ``"circular"`` (periodic
    extension: any pad width wraps around as often as needed), ``"reflect"`` (mirror without
    repeating the edge, as PyTorch; the pad must be smaller than the input size, else a
    ``ValueError``), ``"replicate"`` (repeat the edge).
    """
    _checks.choice("fill", fill, FILLS)
    ndim = _checks.spatial_rank("x", x)
    pairs = explicit_pairs(pairs, ndim)
    if fill == "reflect":
        for n, (lo, hi) in zip(np.shape(x)[1:-1], pairs):
            if lo >= n or hi >= n:
                raise ValueError(
                    f"fill='reflect' needs each pad < the input size, got pads {(lo, hi)} for "
                    f"size {n}; use fill='circular' or 'replicate', or a larger input")
    x = jnp.asarray(x)
    if all(lo == 0 and hi == 0 for lo, hi in pairs):
        return x
    widths = ((0, 0),) + pairs + ((0, 0),)
    if fill == "zeros":
        return jnp.pad(x, widths, mode="constant", constant_values=value)
    return jnp.pad(x, widths, mode=_JNP_MODE[fill])
