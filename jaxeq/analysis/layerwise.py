"""Layer by layer: how equivariant every intermediate map of a net is, in one jitted pass.

A model is accepted through one of two explicit protocols, never by guessing its type:

- a ``jq.chain`` net (:class:`jaxeq.compose.Chain`): every element is a
  :class:`jaxeq.compose.Layer` whose stride was declared when the chain was built (the rules
  are in :mod:`jaxeq.compose`); rows are named ``"<index>:<layer name>"``;
- a flax module matching :class:`StridedModule`: ``init``, ``apply`` and
  ``feature_strides()``, a mapping from module path (as flax's ``capture_intermediates`` names
  it, e.g. ``"layer1_0/conv1"``) to the cumulative stride of that module's output.

Anything else is a ``TypeError`` that says what is expected.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from jaxeq import _checks
from jaxeq.analysis.engine import (Measured, _aux_layout_cached, _check_batching, _check_border,
                                   _check_chunk, _check_common, _errors, _reduce_map, _run)
from jaxeq.analysis.one_copy import signature as abstract_signature
from jaxeq.compose import Chain

__all__ = ["StridedModule", "layerwise_equivariance"]


@runtime_checkable
class StridedModule(Protocol):
    """A flax module that declares the cumulative stride of its intermediate outputs."""

    def init(self, *args: Any, **kwargs: Any) -> Any: ...

    def apply(self, *args: Any, **kwargs: Any) -> Any: ...

    def feature_strides(self) -> Mapping[str, Sequence[int]]: ...


@dataclasses.dataclass(frozen=True)
class _FlaxFeatures:
    """(variables, x) -> {module path: output} via flax's capture_intermediates. Hashable by
    model and settings (flax modules compare by their fields), so the engine compiles one
    measurement per model and takes the variables as an argument."""
    model: Any
    apply_kwargs: tuple  # sorted (name, value) items

    def __call__(self, variables, x):
        _, state = self.model.apply(variables, x, capture_intermediates=True,
                                    mutable=["intermediates"], **dict(self.apply_kwargs))
        out: dict[str, Any] = {}

        def walk(tree, path):
            for key, val in tree.items():
                if key == "__call__":
                    name = "/".join(path) if path else "(output)"
                    arrays = [v for v in val if hasattr(v, "shape")]
                    for i, arr in enumerate(arrays):
                        out[name if len(arrays) == 1 else f"{name}#{i}"] = arr
                elif isinstance(val, Mapping):
                    walk(val, path + [key])

        walk(state["intermediates"], [])
        return out


def _flax_apply(model, apply_kwargs) -> _FlaxFeatures:
    """The hashable ``(variables, x) -> {module path: output}`` of ``model`` applied with
    ``apply_kwargs`` (None: ``train=False``)."""
    kwargs = {"train": False} if apply_kwargs is None else dict(apply_kwargs)
    return _FlaxFeatures(model, tuple(sorted(kwargs.items())))


def _flax_features(model, variables, apply_kwargs):
    """x -> {module path: output} via flax's capture_intermediates."""
    features = _flax_apply(model, apply_kwargs)
    return lambda x: features(variables, x)


def _module_features(model: StridedModule, variables, x, apply_kwargs):
    """Features, specs (stride tuple or "invariant"), notes and the outputs' layout
    (:class:`jaxeq.analysis.engine.AuxLayout`) for a :class:`StridedModule`; worked out once
    per model, settings and abstract shapes of ``variables`` and ``x``."""
    g = _flax_apply(model, apply_kwargs)
    key = (g, abstract_signature(variables), tuple(x.shape), np.dtype(x.dtype))
    try:
        layout, specs, notes = _module_specs(*key)
    except TypeError:  # an unhashable model
        layout, specs, notes = _module_specs.__wrapped__(*key)
    return _flax_features(model, variables, apply_kwargs), dict(specs), dict(notes), layout


@functools.lru_cache(maxsize=32)
def _module_specs(g: _FlaxFeatures, variables_sig, x_shape, x_dtype):
    layout = _aux_layout_cached.__wrapped__(g, variables_sig, x_shape, x_dtype)
    ndim = len(x_shape) - 2
    declared = {k: tuple(v) for k, v in g.model.feature_strides().items()}
    specs, notes = {}, {}
    for name, sds in layout.shapes.items():
        if len(sds.shape) != len(x_shape):
            specs[name] = "invariant"
        elif name.split("#")[0] in declared:
            specs[name] = _checks.positive_ints(f"feature_strides()[{name!r}]",
                                                declared[name.split("#")[0]], ndim)
        else:
            notes[name] = "stride not in model.feature_strides(): not measured"
    return layout, specs, notes


def _chain_features(net: Chain, x):
    """Features, cumulative strides ("invariant" for outputs without spatial dims) and notes
    for a jq.chain net."""
    names, specs, notes = [], {}, {}
    ndim = x.ndim - 2
    cumulative = (1,) * ndim
    shape = x.shape
    for i, el in enumerate(net.layers):
        out = jax.eval_shape(el.fn, jax.ShapeDtypeStruct(shape, x.dtype))
        name = f"{i}:{el.name}"
        declared, note = el.stride, ""
        if declared is None:
            declared = 1
            if len(out.shape) == len(shape) and out.shape[1:-1] != shape[1:-1]:
                note = "no stride declared: assumed 1"
        step = _checks.positive_ints(f"stride of chain element {name}", declared, ndim)
        cumulative = tuple(c * s for c, s in zip(cumulative, step))
        names.append(name)
        specs[name] = cumulative if len(out.shape) == x.ndim else "invariant"
        notes[name] = note
        shape = out.shape
    fns = net.fns

    def features(v):
        out = {}
        for name, fn in zip(names, fns):
            v = fn(v)
            out[name] = v
        return out

    return features, specs, notes


def _adapt(model, variables, x, apply_kwargs):
    """(features, specs, notes, layout): layout None for a chain (its shapes are traced per
    element anyway)."""
    if isinstance(model, Chain):
        return _chain_features(model, x) + (None,)
    if isinstance(model, StridedModule):
        return _module_features(model, variables, x, apply_kwargs)
    raise TypeError(f"model must be a jq.chain net (jaxeq.compose.Chain) or a flax module with "
                    f"init, apply and feature_strides() (jaxeq.analysis.StridedModule), got "
                    f"{type(model).__name__}")


def _summaries(measured: Measured, metric: str, border: int) -> dict:
    """name -> (per-shift totals, n_shifts, mean, max, interior, border) over each measured
    output's subgroup shifts, in float64, for all outputs at once (the engine returns them
    stacked, one (outputs, shifts) array per statistic)."""
    if not measured.names:
        return {}
    stacked = {k: v.astype(np.float64) for k, v in measured.stats.items()}
    total, inner, outer = _errors(stacked, metric, border)
    ok = ~np.isnan(total)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an output with no shift in its group
        mean, high = np.nanmean(total, 1), np.nanmax(total, 1)
        interior = np.nanmean(np.where(ok, inner, np.nan), 1)
        outside = np.nanmean(np.where(ok, outer, np.nan), 1)
    columns = zip(measured.names, total, ok.sum(1).tolist(), mean.tolist(), high.tolist(),
                  interior.tolist(), outside.tolist())
    return {n: row for n, *row in columns}


def _row(name, sds, spec, summary, st, note, *, error_maps, mean_abs, final,
         final_group) -> dict:
    """One table row; ``summary`` (from :func:`_summaries`) is None for an output that was not
    measured, ``st`` its raw statistics (for the error map)."""
    row = {"path": name, "shape": tuple(sds.shape[1:]),
           "stride": spec if isinstance(spec, tuple) else None,
           "kind": "skipped", "n_shifts": 0, "mean": np.nan, "max": np.nan,
           "interior": np.nan, "border": np.nan, "note": note}
    if summary is None:
        return row
    invariant = spec == "invariant"
    total, n_shifts, mean, high, interior, outside = summary
    row["kind"] = "invariant" if invariant else "equivariant"
    row["n_shifts"] = n_shifts
    if n_shifts:
        row["mean"], row["max"] = mean, high
        if not invariant:
            row["interior"], row["border"] = interior, outside
    if invariant:
        row["subgroup_stride"] = tuple(int(v) for v in final)
        row["n_subgroup"] = int(final_group.sum())
        row["max_subgroup"] = (float(np.max(total[final_group]))
                               if final_group.any() else np.nan)
    if error_maps and not invariant and n_shifts:
        row["error_map"] = _reduce_map(st, mean_abs)
    return row


def layerwise_equivariance(model: Any, variables: Any, x: Any, shifts: Any, *,
                           action: str = "roll", border: int = 1, metric: str = "relative",
                           apply_kwargs: Mapping | None = None,
                           chunk_size: int | None = None,
                           error_maps: bool = False, batching: str = "auto",
                           memory_budget: int | None = None) -> list[dict]:
    """One row per layer output: how equivariant each intermediate map is, in one jitted pass.

    ``model`` is a flax module matching :class:`StridedModule` (outputs captured with
    ``capture_intermediates``; called as ``model.apply(variables, x, **apply_kwargs)``, default
    ``train=False``; cumulative strides from ``model.feature_strides()``) or a ``jq.chain`` net
    (``variables`` ignored, pass None; strides as each element declared them, see
    :mod:`jaxeq.compose`).

    Each row is a dict: ``path``, ``shape`` (without the batch dim), ``stride`` (cumulative, or
    None), ``kind`` ("equivariant": compared with the shifted reference map; "invariant": no
    spatial dims, compared with the unshifted output; "skipped": the model declares no stride
    for this path, see ``note``), ``n_shifts`` (shifts in the layer's subgroup), ``mean`` and
    ``max`` error over those shifts, ``interior`` and ``border`` (mean over shifts; border =
    the ``border`` outermost pixels of that layer's own map), ``note``, and with
    ``error_maps=True`` ``error_map`` (see :func:`jaxeq.error_map`). Shifts outside a layer's
    subgroup are left out of its row. Rows without spatial dims (the logits) also carry
    ``max_subgroup``: the max over the ``n_subgroup`` shifts that are multiples of the largest
    stride of the measured layers (``subgroup_stride``), where exact invariance can hold.
    ``batching``, ``chunk_size`` and ``memory_budget``: how the shifted copies go through the
    model (:mod:`jaxeq.analysis.engine`; by default one real batch, checked).
    """
    ndim, x, shifts = _check_common(x, shifts, action, metric)
    border = _check_border(border)
    chunk_size = _check_chunk(chunk_size)
    _check_batching(batching, memory_budget)
    features, specs, notes, layout = _adapt(model, variables, x, apply_kwargs)
    if layout is not None:
        order, shapes = layout.order, layout.shapes
    else:
        order = []

        def recording(v):  # pytrees sort dict keys: keep the execution order of the layers
            out = features(v)
            order[:] = list(out)
            return out

        shapes = jax.eval_shape(recording, x)
    measured = {}
    for name, spec in specs.items():
        if spec != "invariant" and action == "roll" and any(
                n % s for n, s in zip(x.shape[1:-1], spec)):
            notes[name] = f"input size not a multiple of stride {spec}: roll not defined"
            continue
        measured[name] = spec
    if isinstance(model, Chain):
        run_features = features
    else:  # one compiled program per model and settings; the variables are its argument
        run_features = ("with_aux", _flax_apply(model, apply_kwargs), variables)
    results = _run(run_features, x, shifts, measured, action, border, chunk_size, error_maps,
                   batching, memory_budget,
                   per_image=None if layout is None else layout.bytes_per_image)

    spatial = [spec for spec in measured.values() if spec != "invariant"]
    final = tuple(np.max(np.asarray(spatial), axis=0)) if spatial else (1,) * ndim
    final_group = np.all(np.asarray(shifts) % np.asarray(final) == 0, axis=1)
    summaries = _summaries(results, metric, border)
    index = {name: i for i, name in enumerate(results.names)}
    return [_row(name, shapes[name], specs.get(name), summaries.get(name),
                 results.of(name) if error_maps and name in index else None,
                 notes.get(name, ""), error_maps=error_maps,
                 mean_abs=results.mean_abs[index[name]] if name in index else None,
                 final=final, final_group=final_group)
            for name in order]
