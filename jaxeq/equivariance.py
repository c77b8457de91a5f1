"""Measure where and how much translation equivariance breaks, for any array -> array function.

Every measurement applies the function to all S shifted inputs in ONE jitted call (``jax.vmap``
over the shifts, or ``lax.map`` in chunks of ``chunk_size`` when memory is short) and compares
with the unshifted output moved by ``shift / out_stride``.

Conventions (shared by every function here):

- ``x`` is ``(N, *spatial, C)`` with 1, 2 or 3 spatial dims; ``shifts`` is an ``(S, ndim)``
  integer array (e.g. :func:`jaxeq.shift_grid`).
- ``action="roll"``: circular shift (:func:`jaxeq.roll`) of input and output.
  ``action="translate"``: zero-fill translation (:func:`jaxeq.translate`). The expected output
  is ``f(x)`` translated by ``shift / out_stride``; the pixels that translation vacates have no
  defined expected value (``f(x)`` beyond its canvas was never computed), so they are left out
  of every comparison. Content of ``x`` that leaves the canvas is lost by the action itself: an
  exactly equivariant ``f`` gives zero error only when ``x`` has a zero margin >= |shift|.
- ``out_stride`` (int or one per dim) is the output's stride relative to the input. Only shifts
  that are multiples of it form the subgroup under which equivariance is defined; the error of
  every other shift is reported as **NaN** (never silently compared with a rounded shift).
  With ``action="roll"`` each input size must be a multiple of ``out_stride``.
- ``metric="relative"`` (default): ``||f(g x) - g f(x)||_2 / ||g f(x)||_2`` over the compared
  pixels of the whole batch; ``"l2"``: the numerator alone; ``"max_abs"``: the largest
  ``|f(g x) - g f(x)|``.
- ``border=b``: the output pixels closer than ``b`` to an edge form the *border* region, the
  rest the *interior*. For the relative metric both parts share the denominator of the total,
  so ``interior**2 + border**2 == total**2``; an empty interior gives NaN.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq import _checks
from jaxeq.shifts import roll, translate

ACTIONS = ("roll", "translate")
METRICS = ("relative", "l2", "max_abs")

__all__ = [
    "ACTIONS", "METRICS", "ShiftErrors", "assert_equivariant", "assert_invariant",
    "equivariance_error", "error_map", "invariance_error", "layerwise_equivariance",
    "shifted_apply",
]


class ShiftErrors(NamedTuple):
    """Per-shift errors split by region (returned when ``border`` is given); each ``(S,)``."""
    total: np.ndarray
    interior: np.ndarray
    border: np.ndarray


# ----------------------------------------------------------------------------- validation

def _check_shifts(shifts: Any, ndim: int) -> jnp.ndarray:
    arr = np.asarray(shifts) if not isinstance(shifts, jax.Array) else shifts
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"shifts must be an integer array of shape (S, {ndim}), got dtype "
                        f"{arr.dtype}; build one with jaxeq.shift_grid")
    if arr.ndim != 2 or arr.shape[1] != ndim or arr.shape[0] < 1:
        raise ValueError(f"shifts must have shape (S, {ndim}) with S >= 1 (one row per shift, "
                         f"one column per spatial dim of x), got shape {tuple(arr.shape)}")
    return jnp.asarray(arr, jnp.int32)


def _check_common(x: Any, shifts: Any, action: str, metric: str = "relative"):
    ndim = _checks.spatial_rank("x", x)
    _checks.choice("action", action, ACTIONS)
    _checks.choice("metric", metric, METRICS)
    return ndim, jnp.asarray(x), _check_shifts(shifts, ndim)


def _check_out_stride(out_stride: Any, ndim: int, x_shape: tuple, action: str) -> tuple:
    strides = _checks.positive_ints("out_stride", out_stride, ndim)
    if action == "roll":
        sizes = tuple(x_shape[1:-1])
        if any(n % s for n, s in zip(sizes, strides)):
            raise ValueError(f"out_stride {strides} must divide every spatial size of x {sizes} "
                             f"for action='roll' (a circular shift of the input maps to one of "
                             f"the output only then)")
    return strides


def _check_border(border: Any) -> int | None:
    if border is None:
        return None
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"border must be None or an int >= 0 (pixels of the output), "
                         f"got {border!r}")
    return int(border)


def _check_chunk(chunk_size: Any) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be None or an int >= 1, got {chunk_size!r}")
    return int(chunk_size)


# ----------------------------------------------------------------------------- engine

def _act(x, s, action):
    return roll(x, s) if action == "roll" else translate(x, s)


def _interior_mask(spatial: tuple, border: int | None) -> np.ndarray:
    """(1, *spatial, 1) float mask, 1 at least ``border`` pixels from every edge."""
    mask = np.ones(spatial, np.float32)
    if border:
        for d, n in enumerate(spatial):
            idx = np.arange(n)
            keep = (idx >= border) & (idx < n - border)
            shape = [1] * len(spatial)
            shape[d] = n
            mask = mask * keep.reshape(shape)
    return mask[None, ..., None]


def _compare(y, ref, s, spec, action, border, want_map):
    """Per-shift statistics of one output. ``spec`` is a stride tuple (equivariance) or the
    string "invariant" (compare with the unshifted output)."""
    dtype = ref.dtype
    if spec == "invariant":
        expected, valid, in_group = ref, jnp.ones((), dtype), jnp.bool_(True)
        interior = jnp.ones((), dtype)
    else:
        stride = jnp.asarray(spec, jnp.int32)
        in_group = jnp.all(s % stride == 0)
        t = s // stride
        spatial = ref.shape[1:-1]
        if action == "roll":
            expected, valid = roll(ref, t), jnp.ones((), dtype)
        else:
            expected = translate(ref, t)
            valid = translate(jnp.ones((1,) + spatial + (1,), dtype), t)
        interior = jnp.asarray(_interior_mask(spatial, border), dtype)
    diff = (y - expected) * valid
    refm = expected * valid
    absd = jnp.abs(diff)
    inner = jnp.broadcast_to(interior, diff.shape)
    stats = {
        "d2_int": jnp.sum(jnp.square(diff) * inner), "d2_all": jnp.sum(jnp.square(diff)),
        "r2_all": jnp.sum(jnp.square(refm)),
        "max_int": jnp.max(absd * inner), "max_bor": jnp.max(absd * (1 - inner)),
        "max_all": jnp.max(absd),
        "n_int": jnp.sum(jnp.broadcast_to(valid, diff.shape) * inner),
        "n_all": jnp.sum(jnp.broadcast_to(valid, diff.shape)),
    }
    if want_map and spec != "invariant":
        stats["map"] = jnp.mean(absd, axis=(0, absd.ndim - 1))
        stats["map_valid"] = jnp.broadcast_to(valid, (1,) + ref.shape[1:-1] + (1,))[0, ..., 0]
    nan = jnp.asarray(jnp.nan, jnp.result_type(dtype, jnp.float32))
    return {k: jnp.where(in_group, v.astype(nan.dtype), nan) for k, v in stats.items()}, in_group


def _program(features, specs, action, border, chunk_size, want_map):
    """The jitted measurement: ``features(x)`` is a dict name -> array; ``specs`` name ->
    stride tuple or "invariant"."""

    def program(x, shifts):
        ref = features(x)

        def one(s):
            ys = features(_act(x, s, action))
            out, groups = {}, {}
            for name, spec in specs.items():
                out[name], groups[name] = _compare(ys[name], ref[name], s, spec, action,
                                                   border, want_map)
            return out, groups

        if chunk_size is None:
            stats, groups = jax.vmap(one)(shifts)
        else:
            stats, groups = jax.lax.map(one, shifts, batch_size=chunk_size)
        scale = {k: jnp.max(jnp.abs(v)) for k, v in ref.items()}
        mean_abs = {k: jnp.mean(jnp.abs(v)) for k, v in ref.items()}
        return stats, groups, scale, mean_abs

    return jax.jit(program)


@functools.lru_cache(maxsize=64)
def _single_output_program(f, spec, action, border, chunk_size, want_map):
    # Cached per function and settings: repeated calls with the same f (a test sweep, a
    # benchmark) reuse one compiled program instead of re-tracing a fresh closure each time.
    return _program(lambda v: {"y": f(v)}, {"y": spec}, action, border, chunk_size, want_map)


def _run(features, x, shifts, specs, action, border, chunk_size, want_map):
    """Run a measurement; ``features`` is either a callable returning a dict (traced afresh)
    or ``("single", f)`` for one-output functions (compiled once per f and settings).
    Returns numpy (per-shift stats, in_group, scale, mean_abs)."""
    if isinstance(features, tuple):
        (name, spec), = specs.items()
        try:
            compiled = _single_output_program(features[1], spec, action, border, chunk_size,
                                              want_map)
        except TypeError:  # an unhashable callable: no caching
            compiled = _program(lambda v: {"y": features[1](v)}, specs, action, border,
                                chunk_size, want_map)
    else:
        compiled = _program(features, specs, action, border, chunk_size, want_map)
    stats, groups, scale, mean_abs = compiled(x, shifts)
    to_np = lambda tree: jax.tree_util.tree_map(np.asarray, tree)  # noqa: E731
    return to_np(stats), to_np(groups), to_np(scale), to_np(mean_abs)


def _errors(st: dict, metric: str, border: int | None):
    """(total, interior, border) per-shift arrays from the statistics of one output."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "max_abs":
            total, inner, outer = st["max_all"], st["max_int"], st["max_bor"]
        else:
            denom = np.sqrt(st["r2_all"]) if metric == "relative" else np.ones_like(st["r2_all"])
            denom = np.maximum(denom, np.finfo(np.float32).tiny)
            total = np.sqrt(st["d2_all"]) / denom
            inner = np.sqrt(st["d2_int"]) / denom
            outer = np.sqrt(np.maximum(st["d2_all"] - st["d2_int"], 0.0)) / denom
        if border is not None:
            inner = np.where(st["n_int"] > 0, inner, np.nan)
            outer = np.where(st["n_all"] - st["n_int"] > 0, outer, np.where(
                np.isnan(total), np.nan, 0.0))
    return total, inner, outer


# ----------------------------------------------------------------------------- public API

def shifted_apply(f: Callable, *, action: str = "roll") -> Callable:
    """A jitted ``(x, shifts) -> (S, *f(x).shape)``: ``f`` on every shifted input, vmapped.

    The building block of every measurement here, exposed for benchmarks (one batched call for
    all shifts versus a Python loop of jitted calls).
    """
    _checks.choice("action", action, ACTIONS)

    @jax.jit
    def apply(x, shifts):
        return jax.vmap(lambda s: f(_act(x, s, action)))(shifts)

    return apply


def equivariance_error(f: Callable, x: Any, shifts: Any, *, action: str = "roll",
                       out_stride: Any = 1, border: int | None = None,
                       metric: str = "relative", chunk_size: int | None = None):
    """Per-shift equivariance error of ``f``: compares ``f(g_s x)`` with ``g_{s/out_stride} f(x)``.

    Returns an ``(S,)`` float numpy array (NaN for shifts that are not multiples of
    ``out_stride``), or, when ``border`` is given, a :class:`ShiftErrors` with the ``total``,
    ``interior`` and ``border`` errors (see the module docstring for all conventions).
    """
    ndim, x, shifts = _check_common(x, shifts, action, metric)
    strides = _check_out_stride(out_stride, ndim, x.shape, action)
    border = _check_border(border)
    chunk_size = _check_chunk(chunk_size)
    out = jax.eval_shape(f, x)
    _check_spatial_output(out, x, "equivariance_error")
    if border is not None and any(2 * border >= n for n in out.shape[1:-1]):
        raise ValueError(f"border={border} leaves no interior in the output of spatial shape "
                         f"{out.shape[1:-1]}; use border < half the smallest size")
    stats, _, _, _ = _run(("single", f), x, shifts, {"y": strides}, action, border,
                          chunk_size, False)
    total, inner, outer = _errors(stats["y"], metric, border)
    if border is None:
        return total
    return ShiftErrors(total, inner, outer)


def _check_spatial_output(out, x, who):
    if not hasattr(out, "shape") or len(out.shape) != x.ndim:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{who} needs f to return an (N, *spatial, C) array with the rank of x "
                         f"({x.ndim}), got {shape}; use invariance_error for outputs without "
                         f"spatial dims")


def invariance_error(f: Callable, x: Any, shifts: Any, *, action: str = "roll",
                     metric: str = "relative", chunk_size: int | None = None) -> np.ndarray:
    """Per-shift invariance error ``||f(g_s x) - f(x)|| / ||f(x)||`` (metric as in
    :func:`equivariance_error`); ``f`` may return any array (e.g. logits ``(N, K)``)."""
    _, x, shifts = _check_common(x, shifts, action, metric)
    chunk_size = _check_chunk(chunk_size)
    stats, _, _, _ = _run(("single", f), x, shifts, {"y": "invariant"}, action, None,
                          chunk_size, False)
    return _errors(stats["y"], metric, None)[0]


def _fail_message(kind, action, shifts, stats, scale, atol, rtol, rel):
    worst = int(np.nanargmax(stats["max_all"]))
    bad = int(np.sum(stats["max_all"] > atol + rtol * scale))
    return (f"f is not {kind} under action={action!r}: worst shift "
            f"{tuple(int(v) for v in shifts[worst])} has max |difference| "
            f"{stats['max_all'][worst]:.3e} (allowed atol + rtol * scale = {atol:g} + {rtol:g} * "
            f"{scale:.3e}) and relative L2 error {rel[worst]:.3e}; {bad} of {len(shifts)} "
            f"shifts fail")


def assert_equivariant(f: Callable, x: Any, shifts: Any, *, action: str = "roll",
                       out_stride: Any = 1, atol: float = 1e-6, rtol: float = 1e-5,
                       chunk_size: int | None = None) -> None:
    """Raise ``AssertionError`` unless ``f(g_s x) == g_{s/out_stride} f(x)`` for every shift,
    within ``|difference| <= atol + rtol * max|f(x)|`` at every compared pixel (``rtol`` is
    relative to the output scale). The message names the worst shift and its error.

    Every shift must be a multiple of ``out_stride`` (equivariance is only defined on that
    subgroup; ``equivariance_error`` reports the others as NaN).
    """
    ndim, x, shifts = _check_common(x, shifts, action)
    strides = _check_out_stride(out_stride, ndim, x.shape, action)
    chunk_size = _check_chunk(chunk_size)
    host = np.asarray(shifts)
    off = host[np.any(host % np.asarray(strides) != 0, axis=1)]
    if len(off):
        raise ValueError(f"shifts {off[:4].tolist()}{' ...' if len(off) > 4 else ''} are not "
                         f"multiples of out_stride={strides}: equivariance is defined only on "
                         f"that subgroup; use jaxeq.shift_grid(m, step=...) or "
                         f"equivariance_error (which reports them as NaN)")
    _check_spatial_output(jax.eval_shape(f, x), x, "assert_equivariant")
    stats, _, scale, _ = _run(("single", f), x, shifts, {"y": strides}, action, None,
                              chunk_size, False)
    st, scale = stats["y"], float(scale["y"])
    if np.any(st["max_all"] > atol + rtol * scale):
        rel = _errors(st, "relative", None)[0]
        raise AssertionError(_fail_message("equivariant", action, host, st, scale, atol, rtol,
                                           rel))


def assert_invariant(f: Callable, x: Any, shifts: Any, *, action: str = "roll",
                     atol: float = 1e-6, rtol: float = 1e-5,
                     chunk_size: int | None = None) -> None:
    """Raise ``AssertionError`` unless ``f(g_s x) == f(x)`` for every shift within
    ``atol + rtol * max|f(x)|``; the message names the worst shift and its error."""
    _, x, shifts = _check_common(x, shifts, action)
    chunk_size = _check_chunk(chunk_size)
    stats, _, scale, _ = _run(("single", f), x, shifts, {"y": "invariant"}, action,
                              None, chunk_size, False)
    st, scale = stats["y"], float(scale["y"])
    if np.any(st["max_all"] > atol + rtol * scale):
        rel = _errors(st, "relative", None)[0]
        raise AssertionError(_fail_message("invariant", action, np.asarray(shifts), st, scale,
                                           atol, rtol, rel))


def _reduce_map(st: dict, mean_abs: float) -> np.ndarray:
    """Average the per-shift error maps over the subgroup shifts where each pixel is defined,
    in units of the mean |f(x)|; pixels never compared are NaN."""
    maps, valid = st["map"], st["map_valid"]
    keep = ~np.isnan(maps.reshape(len(maps), -1)[:, 0])  # shifts in the subgroup
    maps, valid = maps[keep], valid[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sum(maps * valid, axis=0) / np.sum(valid, axis=0)
    return out / max(float(mean_abs), np.finfo(np.float32).tiny)


def error_map(f: Callable, x: Any, shifts: Any, *, action: str = "roll", out_stride: Any = 1,
              chunk_size: int | None = None) -> np.ndarray:
    """Per-output-pixel error ``|f(g_s x) - g_s' f(x)|``, averaged over the batch, the channels
    and the subgroup shifts for which that pixel is compared, divided by the mean ``|f(x)|``.

    Returns an array of the output's spatial shape; pixels never compared are NaN. A zero-padded
    conv shows its border leak as a bright frame.
    """
    ndim, x, shifts = _check_common(x, shifts, action)
    strides = _check_out_stride(out_stride, ndim, x.shape, action)
    chunk_size = _check_chunk(chunk_size)
    _check_spatial_output(jax.eval_shape(f, x), x, "error_map")
    host = np.asarray(shifts)
    if not np.any(np.all(host % np.asarray(strides) == 0, axis=1)):
        raise ValueError(f"no shift is a multiple of out_stride={strides}")
    stats, _, _, mean_abs = _run(("single", f), x, shifts, {"y": strides}, action,
                                 None, chunk_size, True)
    return _reduce_map(stats["y"], mean_abs["y"])


# ----------------------------------------------------------------------------- layer by layer

def _flax_features(model, variables, apply_kwargs):
    """x -> {module path: output} via flax's capture_intermediates (flax imported lazily)."""

    def features(x):
        _, state = model.apply(variables, x, capture_intermediates=True,
                               mutable=["intermediates"], **apply_kwargs)
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

    return features


def _fn_name(fn) -> str:
    base = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(base, "__name__", type(base).__name__)


def _declared_stride(fn) -> Any:
    """A chain element's stride: ``functools.partial`` keyword ``stride``, else the default of
    the wrapped function's ``stride`` parameter (jaxeq pools: ``None`` means the window), else an
    attribute ``stride``; ``None`` when nothing declares one."""
    if isinstance(fn, functools.partial):
        if "stride" in fn.keywords:
            stride = fn.keywords["stride"]
        else:
            try:
                param = inspect.signature(fn.func).parameters.get("stride")
            except (TypeError, ValueError):
                param = None
            if param is None or param.default is inspect.Parameter.empty:
                return getattr(fn.func, "stride", None)
            stride = param.default
        if stride is None and "window" in fn.keywords:
            stride = fn.keywords["window"]
        return stride
    return getattr(fn, "stride", None)


def _chain_features(fns, x):
    """Names, cumulative strides (None: invariant rows) and notes for a jq.chain net."""
    names, specs, notes = [], {}, {}
    ndim = x.ndim - 2
    cumulative = (1,) * ndim
    shape = x.shape
    for i, fn in enumerate(fns):
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct(shape, x.dtype))
        name = f"{i}:{_fn_name(fn)}"
        declared = _declared_stride(fn)
        note = ""
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

    def features(v):
        out = {}
        for name, fn in zip(names, fns):
            v = fn(v)
            out[name] = v
        return out

    return features, specs, notes


def layerwise_equivariance(model: Any, variables: Any, x: Any, shifts: Any, *,
                           action: str = "roll", border: int = 1, metric: str = "relative",
                           apply_kwargs: Mapping | None = None,
                           chunk_size: int | None = None,
                           error_maps: bool = False) -> list[dict]:
    """One row per layer output: how equivariant each intermediate map is, in one jitted pass.

    ``model`` is a flax module (outputs captured with ``capture_intermediates``; called as
    ``model.apply(variables, x, **apply_kwargs)``, default ``train=False``; cumulative strides
    from ``model.feature_strides()``) or a ``jq.chain`` net (``variables`` ignored, pass None;
    strides from each element's ``stride`` keyword / default / attribute).

    Each row is a dict: ``path``, ``shape`` (without the batch dim), ``stride`` (cumulative, or
    None), ``kind`` ("equivariant": compared with the shifted reference map; "invariant": no
    spatial dims, compared with the unshifted output; "skipped": the model declares no stride
    for this path, see ``note``), ``n_shifts`` (shifts in the layer's subgroup), ``mean`` and
    ``max`` error over those shifts, ``interior`` and ``border`` (mean over shifts; border =
    the ``border`` outermost pixels of that layer's own map), ``note``, and with
    ``error_maps=True`` ``error_map`` (see :func:`error_map`). Shifts outside a layer's
    subgroup are left out of its row. Rows without spatial dims (the logits) also carry
    ``max_subgroup``: the max over the ``n_subgroup`` shifts that are multiples of the largest
    stride of the measured layers (``subgroup_stride``), where exact invariance can hold.
    """
    ndim, x, shifts = _check_common(x, shifts, action, metric)
    border = _check_border(border)
    chunk_size = _check_chunk(chunk_size)
    notes: dict[str, str] = {}
    if hasattr(model, "fns") and callable(model):
        features, specs, notes = _chain_features(tuple(model.fns), x)
    elif hasattr(model, "apply") and hasattr(model, "init"):
        if not hasattr(model, "feature_strides"):
            raise TypeError(f"model {type(model).__name__} has no feature_strides(); "
                            f"layerwise_equivariance needs the model's own stride metadata")
        kwargs = {"train": False} if apply_kwargs is None else dict(apply_kwargs)
        features = _flax_features(model, variables, kwargs)
        declared = {k: tuple(v) for k, v in model.feature_strides().items()}
        shapes = jax.eval_shape(features, x)
        specs = {}
        for name, sds in shapes.items():
            if len(sds.shape) != x.ndim:
                specs[name] = "invariant"
            elif name.split("#")[0] in declared:
                stride = _checks.positive_ints(f"feature_strides()[{name!r}]",
                                               declared[name.split("#")[0]], ndim)
                specs[name] = stride
            else:
                notes[name] = "stride not in model.feature_strides(): not measured"
    else:
        raise TypeError(f"model must be a flax module with feature_strides() or a jq.chain "
                        f"net, got {type(model).__name__}")

    order: list[str] = []

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
    stats, _, _, mean_abs = _run(features, x, shifts, measured, action, border, chunk_size,
                                 error_maps)

    spatial = [spec for spec in measured.values() if spec != "invariant"]
    final = tuple(np.max(np.asarray(spatial), axis=0)) if spatial else (1,) * ndim
    final_group = np.all(np.asarray(shifts) % np.asarray(final) == 0, axis=1)
    rows = []
    for name in order:
        sds, spec = shapes[name], specs.get(name)
        row = {"path": name, "shape": tuple(sds.shape[1:]),
               "stride": spec if isinstance(spec, tuple) else None,
               "kind": "skipped", "n_shifts": 0, "mean": np.nan, "max": np.nan,
               "interior": np.nan, "border": np.nan, "note": notes.get(name, "")}
        if name in measured:
            st = stats[name]
            total, inner, outer = _errors(st, metric, border if spec != "invariant" else None)
            ok = ~np.isnan(total)
            row["kind"] = "invariant" if spec == "invariant" else "equivariant"
            row["n_shifts"] = int(ok.sum())
            if ok.any():
                row["mean"], row["max"] = float(np.mean(total[ok])), float(np.max(total[ok]))
                if spec != "invariant":
                    with np.errstate(invalid="ignore"):
                        row["interior"] = float(np.nanmean(inner[ok])) if np.any(
                            ~np.isnan(inner[ok])) else np.nan
                        row["border"] = float(np.nanmean(outer[ok]))
            if spec == "invariant":
                row["subgroup_stride"] = tuple(int(v) for v in final)
                row["n_subgroup"] = int(final_group.sum())
                row["max_subgroup"] = (float(np.max(total[final_group]))
                                       if final_group.any() else np.nan)
            if error_maps and spec != "invariant" and ok.any():
                row["error_map"] = _reduce_map(st, mean_abs[name])
        rows.append(row)
    return rows
