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
    - one mode per spatial dim, e.g. ``("same", "full", "full")`` (a 3-D net full in space only).

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

    if isinstance(padding, str) or _is_mode_sequence(padding):
        pairs = tuple(_mode_pair(m, s) for m, s in zip(dim_modes(padding, ndim), spans))
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


def _is_mode_sequence(padding: Any) -> bool:
    return isinstance(padding, Sequence) and not isinstance(padding, str) and \
        len(padding) > 0 and all(isinstance(m, str) for m in padding)


def _mode_pair(mode: str, span: int) -> tuple[int, int]:
    """(lo, hi) of one dim padded by ``mode`` for a window spanning ``span`` pixels."""
    if mode == "valid":
        return (0, 0)
    if mode == "same":
        return ((span - 1) // 2, span - 1 - (span - 1) // 2)
    return (span - 1, span - 1)


def dim_modes(padding: Any, ndim: int) -> tuple[str, ...]:
    """A padding mode name, or one per spatial dim, as a tuple of ``ndim`` names."""
    return _per_dim("padding", padding, ndim, PADDINGS)


def dim_fills(fill: Any, ndim: int, allowed: Sequence[str] = FILLS) -> tuple[str, ...]:
    """A fill name, or one per spatial dim, as a tuple of ``ndim`` names from ``allowed``."""
    return _per_dim("fill", fill, ndim, allowed)


def _per_dim(name: str, value: Any, ndim: int, allowed: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (_checks.choice(name, value, allowed),) * ndim
    if not isinstance(value, Sequence) or len(value) != ndim:
        raise ValueError(f"{name} must be one of {tuple(allowed)} or a sequence of {ndim} of them "
                         f"(one per spatial dim), got {value!r}")
    return tuple(_checks.choice(name, v, allowed) for v in value)


def fill_groups(fills: Sequence[str]) -> list[tuple[str, tuple[int, ...]]]:
    """``(fill, dims)`` for every distinct fill of a per-dim ``fills``, in order of first dim."""
    order = list(dict.fromkeys(fills))
    return [(f, tuple(d for d, g in enumerate(fills) if g == f)) for f in order]


def only_dims(pairs: Pairs, dims: Sequence[int]) -> Pairs:
    """``pairs`` with every dim outside ``dims`` set to ``(0, 0)``."""
    return tuple(p if d in dims else (0, 0) for d, p in enumerate(pairs))


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


def pad(x: Any, pairs: Any, fill: Any = "zeros", *, value: float = 0.0) -> jnp.ndarray:
    """Pad the spatial dims of an ``(N, *spatial, C)`` array.

    ``fill``: ``"zeros"`` (the constant ``value``, 0 by default), ``"circular"`` (periodic
    extension: any pad width wraps around as often as needed), ``"reflect"`` (mirror without
    repeating the edge, as PyTorch; the pad must be smaller than the input size, else a
    ``ValueError``), ``"replicate"`` (repeat the edge); or one of those per spatial dim, the
    dims of each fill padded in turn in order of their first dim.
    """
    ndim = _checks.spatial_rank("x", x)
    if not isinstance(fill, str):
        fills = dim_fills(fill, ndim)
        pairs = explicit_pairs(pairs, ndim)
        for f, dims in fill_groups(fills):
            x = pad(x, only_dims(pairs, dims), f, value=value)
        return jnp.asarray(x)
    _checks.choice("fill", fill, FILLS)
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


# ----------------------------------------------------------------------------------------------
# Residual alignment: where a branch output sits relative to its input, and the pad or crop of
# the block input that puts its shortcut on the same pixels.

def window_offset(layers: Sequence[tuple[int, int, Any]]) -> float:
    """Input position of the centre of the window behind output pixel 0, for a chain of
    windowed layers given as ``(kernel_size, stride, padding)`` (one spatial dim).

    Output pixel ``j`` of the chain looks at input position ``S j + offset`` with ``S`` the
    product of the strides: "same" layers add 0, "full" layers move the window out by
    ``(k - 1) / 2`` (times the stride before them), "valid" layers move it in.
    """
    offset, cum = 0.0, 1
    for k, s, padding in layers:
        (lo, _), = padding_pairs(padding, (k,), stride=(s,))
        offset += cum * ((k - 1) / 2 - lo)
        cum *= s
    return offset


def shortcut_pad(main: Sequence[tuple[int, int, Any]],
                 shortcut: Sequence[tuple[int, int, Any]] = ()) -> int:
    """Pixels to pad (> 0) or crop (< 0) on the leading side of a block input before its
    shortcut path so that the shortcut's output pixels line up with the main branch's.

    F-Conv ResNet (SPEC.md): 2 for a BasicBlock identity, 3 before a stride-2 BasicBlock
    downsample, 1 for Bottlenecks. Same-padded blocks get 0.
    """
    diff = window_offset(shortcut) - window_offset(main)
    if diff != int(diff):
        raise ValueError(f"the shortcut cannot be aligned by whole pixels (offset {diff})")
    return int(diff)


def pad_or_crop_start(x: Any, amount: Any, fill: Any = "zeros") -> jnp.ndarray:
    """Pad ``amount`` pixels on both sides of a spatial dim (amount > 0), or crop ``-amount``
    from its start (amount < 0); the end is fixed later by :func:`crop_end_to`. ``amount`` is
    one int for every spatial dim or one per dim; ``fill`` as :func:`pad`."""
    ndim = _checks.spatial_rank("x", x)
    amounts = (amount,) * ndim if isinstance(amount, (int, np.integer)) else tuple(amount)
    if any(a > 0 for a in amounts):
        x = pad(x, tuple((a, a) if a > 0 else (0, 0) for a in amounts), fill)
    if any(a < 0 for a in amounts):
        x = x[(slice(None),) + tuple(slice(-a, None) if a < 0 else slice(None) for a in amounts)]
    return x


def crop_end_to(x: Any, sizes: Sequence[int]) -> jnp.ndarray:
    """Keep the leading ``sizes`` pixels of each spatial dim (BagNet's bottom-right crop)."""
    ndim = _checks.spatial_rank("x", x)
    have = x.shape[1:-1]
    if any(h < s for h, s in zip(have, sizes)):
        raise ValueError(f"cannot crop a map of spatial size {have} to the larger {tuple(sizes)}")
    if tuple(have) == tuple(sizes):
        return x
    return x[(slice(None),) + tuple(slice(0, s) for s in sizes[:ndim])]
