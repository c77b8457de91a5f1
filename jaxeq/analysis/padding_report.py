"""Padding diagnostics of a flax model: every windowed layer's ``(lo, hi)`` pads, whether the
windows use them unevenly, which input sizes avoid that, and the spatial-bias maps.

**Pads.** The layers are found by an abstract trace (``jax.eval_shape``, nothing computed)
under ``flax.linen.intercept_methods``: every call of a :class:`jaxeq.nn.Conv`, ``MaxPool``,
``AvgPool`` or ``BlurPool`` is recorded with its input and output shapes, and its pads are
:func:`jaxeq.padding_pairs` of the module's own fields, the pairs the layer itself pads with.
The models are not changed. (Shortcut alignment in residual blocks, ``pad_or_crop_start`` /
``crop_end_to``, pads no window and is not listed.)

**Uneven pads** (Alsallakh et al., ICLR 2021, "Mind the Pad -- CNNs can develop blind
spots"): a window of span ``k`` and stride ``s`` over a padded length ``n + lo + hi`` reaches
only up to ``(out - 1) * s + k``; the rest, ``dropped``, is never read. The pads the layer
effectively uses are ``(lo, hi - dropped)``, and the layer is *uneven* when those differ: a
stride-2 "same" conv on an even input reads its leading pad but drops the trailing one (at
224, ResNet-18's 7x7/2 stem uses (3, 2)); a negative effective pad drops input pixels (the
F-Conv stem max-pool, kernel 2 stride 2 unpadded, on the odd 115x115 map of a 224 input drops
its last row and column). :func:`even_sizes` lists the input sizes for which no layer is
uneven (ResNet-18 "same": 32k + 1, e.g. 225).

**Spatial bias** (the same paper): the response of every layer to a constant input (zeros, or
a constant value), averaged over channels. A circular net gives a constant map; zero padding
gives a frame whose width :func:`bias_border_width` measures.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np

from jaxeq import _checks
from jaxeq import nn as jnn
from jaxeq.padding import effective_kernel, padding_pairs

__all__ = ["LayerPads", "bias_border_width", "bias_maps", "even_sizes", "layer_pads",
           "model_features", "window_reach"]


class LayerPads(NamedTuple):
    """One windowed layer call; every tuple has one entry per spatial dim."""
    path: str                        # flax module path, e.g. "layer1_0/conv1"
    kind: str                        # "conv", "max_pool", "avg_pool" or "blur_pool"
    window: tuple[int, ...]          # span of the (dilated) window
    stride: tuple[int, ...]
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    dropped: tuple[int, ...]         # trailing pixels of the padded input no window reads
    fill: str

    @property
    def effective(self) -> tuple[tuple[int, int], ...]:
        """The pads the windows use: ``(lo, hi - dropped)`` per dim."""
        return tuple((lo, hi - d) for (lo, hi), d in zip(self.pads, self.dropped))

    @property
    def uneven(self) -> bool:
        return any(lo != hi for lo, hi in self.effective)


def window_reach(n: int, span: int, stride: int, lo: int, hi: int) -> tuple[int, int]:
    """``(outputs, dropped)`` of windows of ``span`` and ``stride`` over a length ``n`` padded
    by ``(lo, hi)``: ``dropped`` trailing pixels of the padded input are read by no window."""
    padded = n + lo + hi
    out = (padded - span) // stride + 1
    return out, padded - ((out - 1) * stride + span)


def _layer_config(module) -> tuple | None:
    """(kind, window, stride, padding, fill, dilation) of a windowed module, else None."""
    if isinstance(module, jnn.Conv):
        return ("conv", module.kernel_size, module.strides, module.padding, module.fill,
                module.dilation)
    if isinstance(module, (jnn.MaxPool, jnn.AvgPool)):
        stride = module.window if module.strides is None else module.strides
        kind = "max_pool" if isinstance(module, jnn.MaxPool) else "avg_pool"
        return kind, module.window, stride, module.padding, module.fill, 1
    if isinstance(module, jnn.BlurPool):
        return ("blur_pool", module.filter_size, module.strides, module.padding, module.fill,
                1)
    return None


def _row(module, in_shape, out_shape) -> LayerPads | None:
    config = _layer_config(module)
    if config is None:
        return None
    kind, window, stride, padding, fill, dilation = config
    ndim = len(in_shape) - 2
    ks = _checks.positive_ints("window", window, ndim)
    strides = _checks.positive_ints("stride", stride, ndim)
    dils = _checks.positive_ints("dilation", dilation, ndim)
    pads = padding_pairs(padding, ks, stride=strides, dilation=dils, ndim=ndim)
    spans = tuple(effective_kernel(k, d) for k, d in zip(ks, dils))
    sizes = tuple(in_shape[1:-1])
    dropped = tuple(window_reach(n, k, s, lo, hi)[1]
                    for n, k, s, (lo, hi) in zip(sizes, spans, strides, pads))
    fills = fill if isinstance(fill, str) else "/".join(fill)
    return LayerPads("/".join(module.path), kind, spans, strides, sizes,
                     tuple(out_shape[1:-1]), pads, dropped, fills)


def layer_pads(model: fnn.Module, input_shape: Sequence[int], *,
               dtype: Any = jnp.float32, apply_kwargs: dict | None = None) -> list[LayerPads]:
    """Every windowed layer call of ``model`` on an input of ``input_shape`` ``(N, *spatial,
    C)``, in call order, from an abstract trace of ``model.init`` (nothing is computed)."""
    shape = _checks.int_sequence("input_shape", list(input_shape), 1, min_length=3)
    rows: list[LayerPads] = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and args and hasattr(args[0], "shape"):
            row = _row(context.module, args[0].shape, out.shape)
            if row is not None:
                rows.append(row)
        return out

    kwargs = {"train": False} if apply_kwargs is None else dict(apply_kwargs)
    x = jax.ShapeDtypeStruct(tuple(shape), dtype)
    with fnn.intercept_methods(record):
        jax.eval_shape(lambda v: model.init(jax.random.key(0), v, **kwargs), x)
    return rows


def even_sizes(model: fnn.Module, input_shape: Sequence[int], sizes: Iterable[int], *,
               apply_kwargs: dict | None = None) -> list[int]:
    """The sizes ``n`` in ``sizes`` for which no layer of ``model`` is uneven, on inputs of
    ``input_shape`` with its last two spatial dims set to ``n`` (both of a 2-D model; H and W
    of a video model, whose length T stays)."""
    base = list(_checks.int_sequence("input_shape", list(input_shape), 1, min_length=3))
    keep = []
    for n in sizes:
        spatial = base[1:-1]
        spatial = spatial[:-2] + [n, n] if len(spatial) >= 2 else [n]
        shape = [base[0], *spatial, base[-1]]
        try:
            rows = layer_pads(model, shape, apply_kwargs=apply_kwargs)
        except ValueError:  # too small for some window: not a usable size
            continue
        if not any(r.uneven for r in rows):
            keep.append(int(n))
    return keep


def model_features(model: fnn.Module, variables: Any,
                   apply_kwargs: dict | None = None) -> Callable[[Any], dict]:
    """``x -> {module path: output}`` of a flax model (its capture_intermediates)."""
    from jaxeq.analysis.layerwise import _flax_features

    return _flax_features(model, variables, apply_kwargs)


def bias_maps(features: Callable[[Any], dict], input_shape: Sequence[int], *,
              value: float = 0.0, dtype: Any = jnp.float32) -> dict[str, np.ndarray]:
    """The spatial-bias map of every spatial output of ``features`` (``x -> {name: (N,
    *spatial, C) array}``, e.g. :func:`model_features`): its response to the constant input
    ``value`` of ``input_shape``, averaged over the channels, of the first image. Outputs
    without the input's rank (logits) are left out."""
    x = jnp.full(tuple(input_shape), value, dtype)
    # run op by op: under jit the weights a features closure holds become constants that XLA
    # folds at compile time, far slower than this single forward pass
    outs = features(x)
    return {name: np.asarray(jnp.mean(y[0].astype(jnp.float32), axis=-1))
            for name, y in outs.items() if y.ndim == len(input_shape)}


def bias_border_width(bias_map: Any, rtol: float = 1e-5) -> int | None:
    """The smallest ``b`` such that the map is constant (within ``rtol`` of its largest
    magnitude) on every pixel at least ``b`` from each edge: 0 for a constant map, the reach of
    the padding otherwise; None if no centred region is constant."""
    m = np.asarray(bias_map, np.float64)
    tol = rtol * float(np.max(np.abs(m), initial=0.0)) + 1e-30
    for b in range(0, (min(m.shape) + 1) // 2 + 1):
        inner = m[tuple(slice(b, n - b) for n in m.shape)]
        if inner.size and float(np.ptp(inner)) <= tol:
            return b
    return None
