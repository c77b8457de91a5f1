"""The Lie derivative of translation (Gruver et al., ICLR 2023, "The Lie derivative for
measuring learned equivariance"): the equivariance error of an infinitesimal shift, from one
forward-mode pass, and its exact split over the layers of a net.

With ``T_t`` the translation by ``t`` pixels along one spatial axis and ``A = d/dt T_t |_{t=0}``
its generator:

- an output without spatial dims (logits; invariance):
  ``L f(x) = d/dt f(T_t x) |_0 = J_f(x) A x``;
- a spatial output of stride ``s`` (equivariance):
  ``L f(x) = d/dt T_{-t/s} f(T_t x) |_0 = J_f(x) A x - A_s f(x)``, ``A_s = A / s`` on the
  output's grid.

``J_f(x) A x`` is one ``jax.linearize`` (one forward pass and its tangent) pushed along every
axis at once (``vmap`` over the axes). ``L f = 0`` exactly when ``f`` commutes with every
small shift. The generator per ``action``:

- ``"roll"`` / ``"fractional"`` (circular): ``A`` is the derivative of
  :func:`jaxeq.fractional_shift` at shift 0: the spectral derivative ``-d/du`` of the periodic
  band-limited interpolant (its Nyquist bin gets 0, as ``cos(pi f)`` has zero slope at 0). It
  is exact for band-limited signals and what a finite difference of fractional shifts
  approaches (:func:`lie_derivative_fd`).
- ``"translate"`` (zero fill): ``A y = (T_1 y - T_{-1} y) / 2`` with :func:`jaxeq.translate`,
  i.e. ``(y[i-1] - y[i+1]) / 2`` with zeros beyond the canvas: the symmetric derivative at
  ``t = 0`` of linear-interpolation zero-fill translation (for any ``0 < h <= 1`` its central
  difference is exactly this). It is local, as zero-fill translation is: a border effect stays
  at the border, where the spectral derivative would read the canvas as periodic and spread the
  wrap-around jump over the whole image (Gibbs ringing).

Summaries per example (Gruver et al. report the mean absolute Lie derivative over the output
entries per axis): ``per_axis[n, d] = mean |L_d f(x)_n|`` and
``norm[n] = mean sqrt(sum_d (L_d f(x)_n)^2)``, means over all output entries of example ``n``.

Layer by layer (:func:`lie_attribution`): for boundaries ``h_0 = x, h_1, ..., h_K = f(x)``
(each layer's output) let ``P_k = J_{f_{>k}}(h_k) A_k h_k`` (the generator at boundary ``k``
pushed to the output). Then ``L f(x) = P_0 - P_K = sum_k (P_{k-1} - P_k)``, and
``c_k = P_{k-1} - P_k = J_{f_{>k}} (J_{f_k} A_{k-1} h_{k-1} - A_k h_k)`` is layer ``k``'s own Lie
derivative carried to the output: the contributions sum to the network's exactly (a
telescoping sum). ``c_k`` is that layer's own share when the boundaries form a chain (the rest
of the net sees ``x`` only through ``h_k``).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq import _checks
from jaxeq.analysis.precision import measure_jit
from jaxeq.analysis.actions import ACTIONS, CIRCULAR
from jaxeq.analysis.layerwise import StridedModule, _chain_features
from jaxeq.compose import Chain, chain
from jaxeq.shifts import fractional_shift, translate

__all__ = ["LieDerivative", "lie_attribution", "lie_derivative", "lie_derivative_fd",
           "push_forward", "summarize_lie", "translation_generator"]


class LieDerivative(NamedTuple):
    """Per-example summaries (numpy) and, when asked for, the derivative itself."""
    per_axis: np.ndarray  # (N, ndim): mean |L_d f(x)| over the output entries
    norm: np.ndarray  # (N,): mean over the output entries of the length of (L_1, ..., L_ndim)
    maps: np.ndarray | None  # (ndim, *f(x).shape): L_d f(x) per axis


def translation_generator(y, axis: int, *, action: str = "roll", stride: int = 1):
    """``A y`` along spatial ``axis`` (0-based): ``d/dt`` of ``y`` moved by ``t / stride``
    pixels at ``t = 0``, with the generator of ``action`` (module docstring)."""
    ndim = y.ndim - 2
    if action in CIRCULAR:
        unit = jnp.zeros((ndim,), jnp.result_type(y.dtype, jnp.float32)).at[axis].set(1.0)
        zero = jnp.zeros((), unit.dtype)
        _, dy = jax.jvp(lambda t: fractional_shift(y, t * unit), (zero,), (jnp.ones_like(zero),))
        return dy / stride
    unit = np.zeros((ndim,), np.int32)
    unit[axis] = 1
    return (translate(y, unit) - translate(y, -unit)) / (2 * stride)


def generators(y, stride, action: str, ndim: int):
    """``(ndim, *y.shape)``: the generator along every axis; zeros for a ``y`` without spatial
    dims (``stride`` None: an invariant output)."""
    if stride is None or y.ndim != ndim + 2:
        return jnp.zeros((ndim,) + y.shape, y.dtype)
    return jnp.stack([translation_generator(y, d, action=action, stride=stride[d])
                      for d in range(ndim)])


def summarize_lie(maps) -> tuple[np.ndarray, np.ndarray]:
    """``(per_axis (N, ndim), norm (N,))`` from ``maps`` of shape ``(ndim, N, ...)``."""
    maps = np.asarray(maps)
    flat = maps.reshape(maps.shape[0], maps.shape[1], -1)
    per_axis = np.mean(np.abs(flat), axis=-1).T
    norm = np.mean(np.sqrt(np.sum(np.square(flat), axis=0)), axis=-1)
    return per_axis, norm


def _setup(f, x, action, out_stride):
    ndim = _checks.spatial_rank("x", x)
    _checks.choice("action", action, ACTIONS)
    x = jnp.asarray(x)
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    out = jax.eval_shape(f, x)
    spatial = hasattr(out, "shape") and len(out.shape) == x.ndim
    strides = _checks.positive_ints("out_stride", out_stride, ndim) if spatial else None
    return ndim, x, strides


def push_forward(fn: Callable, *primals):
    """``(fn(*primals), push)`` with ``push(*tangents)`` the Jacobian-vector product: one
    ``jax.linearize``, or, where ``fn`` holds a ``jax.custom_vjp`` (forward mode undefined,
    e.g. jaxeq's max-pool fast path), the transpose of its VJP (reverse over reverse: the VJP
    is linear in the cotangent, and its own VJP is the JVP). JAX defers the forward-mode
    rules to the first ``push``, so that is where the fallback is taken."""
    y, forward = jax.linearize(fn, *primals)
    reverse: list = []

    def by_reverse(tangents):
        if not reverse:
            _, pull = jax.vjp(fn, *primals)
            reverse.append(jax.vjp(pull, jnp.zeros_like(y))[1])
        return reverse[0](tuple(tangents))[0]

    def push(*tangents):
        if reverse:
            return by_reverse(tangents)
        try:
            return forward(*tangents)
        except TypeError as err:
            if "custom_vjp" not in str(err):
                raise
            return by_reverse(tangents)

    return y, push


def _lie_program(f, action, strides, ndim):
    def maps(v):
        y, push = push_forward(f, v)
        return jax.vmap(push)(generators(v, (1,) * ndim, action, ndim)) - \
            generators(y, strides, action, ndim)

    return measure_jit(maps)


_cached_lie_program = functools.lru_cache(maxsize=32)(_lie_program)


def _compiled(make, cached, *key):
    """``cached(*key)`` (one compiled program per f and settings), or ``make(*key)`` for an
    unhashable ``f``."""
    try:
        return cached(*key)
    except TypeError:
        return make(*key)


def lie_derivative(f: Callable, x: Any, *, action: str = "roll", out_stride: Any = 1,
                   return_map: bool = False) -> LieDerivative:
    """The Lie derivative of translation of ``f`` at ``x`` along every spatial axis.

    ``f`` maps ``(N, *spatial, C)`` to an array; an output with the rank of ``x`` is treated as
    equivariant with total stride ``out_stride``, any other as invariant (module docstring for
    the formulas, the generator of each ``action`` and the summaries). One
    ``jax.linearize`` of ``f`` (:func:`push_forward`), its tangent map vmapped over the axes,
    in one jitted program, compiled once per ``f`` and settings.
    """
    ndim, x, strides = _setup(f, x, action, out_stride)
    out = np.asarray(_compiled(_lie_program, _cached_lie_program, f, action, strides, ndim)(x))
    per_axis, norm = summarize_lie(out)
    return LieDerivative(per_axis, norm, out if return_map else None)


def lie_derivative_fd(f: Callable, x: Any, *, h: float = 1e-2, out_stride: Any = 1):
    """Central finite difference of fractional shifts: per axis
    ``(T_{-h/s} f(T_h x) - T_{h/s} f(T_{-h} x)) / (2 h)`` with ``T`` =
    :func:`jaxeq.fractional_shift` (no shift back for outputs without spatial dims); two forward
    passes per axis. Returns ``(ndim, *f(x).shape)``, what :func:`lie_derivative` with a
    circular action approaches as ``h -> 0`` (error O(h^2) plus float rounding / h)."""
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not h > 0:
        raise ValueError(f"h must be a positive number, got {h!r}")
    ndim, x, strides = _setup(f, x, "fractional", out_stride)
    return np.asarray(_compiled(_fd_program, _cached_fd_program, f, float(h), strides, ndim)(x))


def _fd_program(f, h, strides, ndim):
    def back(y, step):  # the output moved back by -step / stride (none when invariant)
        if strides is None:
            return y
        return fractional_shift(y, -step / jnp.asarray(strides, step.dtype))

    def diff(v):
        rows = []
        for d in range(ndim):
            step = jnp.zeros((ndim,), jnp.float32).at[d].set(h)
            plus = back(f(fractional_shift(v, step)), step)
            minus = back(f(fractional_shift(v, -step)), -step)
            rows.append((plus - minus) / (2 * h))
        return jnp.stack(rows)

    return measure_jit(diff)


_cached_fd_program = functools.lru_cache(maxsize=32)(_fd_program)


# ----------------------------------------------------------------------------- layer by layer

def _chain_runner(net, x):
    """``run(params, x, deltas) -> (y, {boundary: output})`` for a jq.chain net (``params``
    unused), with ``deltas[name]`` added to each layer's output, and the boundaries' strides
    ("invariant": no spatial dims)."""
    _, specs, _ = _chain_features(net, x)
    names, fns = list(specs), net.fns

    def run(_params, v, deltas):
        hs = {}
        for name, fn in zip(names, fns):
            v = fn(v)
            v = v + deltas[name] if name in deltas else v
            hs[name] = v
        return v, hs

    return run, specs


def _flax_runner(model, variables, x, apply_kwargs, paths, out_stride):
    """As :func:`_chain_runner` for a StridedModule: ``deltas`` are added to the outputs of the
    modules at ``paths`` (default: the top-level ones in ``feature_strides()``) through
    ``flax.linen.intercept_methods``, and to the model output (boundary "(output)")."""
    import flax.linen as nn

    ndim = x.ndim - 2
    declared = {k: _checks.positive_ints(f"feature_strides()[{k!r}]", v, ndim)
                for k, v in model.feature_strides().items()}
    chosen = [p for p in declared if "/" not in p] if paths is None else list(paths)
    unknown = [p for p in chosen if p not in declared]
    if unknown:
        raise ValueError(f"paths {unknown} are not in model.feature_strides(): "
                         f"{sorted(declared)[:8]}...")
    kwargs = {"train": False} if apply_kwargs is None else dict(apply_kwargs)

    def run(params, v, deltas):
        hs = {}

        def intercept(next_fun, args, kw, context):
            out = next_fun(*args, **kw)
            if context.method_name != "__call__" or context.module.scope is None:
                return out  # other methods, and modules not bound yet (no path)
            name = "/".join(context.module.path)
            if name not in chosen:
                return out
            if name in hs:
                raise ValueError(f"module {name!r} is called twice: not a boundary")
            out = out + deltas[name] if name in deltas else out
            hs[name] = out
            return out

        with nn.intercept_methods(intercept):
            y = model.apply(params, v, **kwargs)
        y = y + deltas["(output)"] if "(output)" in deltas else y
        hs["(output)"] = y
        return y, hs

    specs = {p: declared[p] for p in chosen}
    out = jax.eval_shape(lambda v: run(variables, v, {})[0], x)
    if len(out.shape) != x.ndim:
        specs["(output)"] = "invariant"
    else:
        last = [s for s in specs.values()][-1:] or [(1,) * ndim]
        specs["(output)"] = _checks.positive_ints(
            "out_stride", last[0] if out_stride is None else out_stride, ndim)
    return run, specs


def _runner(model, variables, x, apply_kwargs, paths, out_stride):
    if isinstance(model, (list, tuple)):
        model = chain(*model)
    if isinstance(model, Chain):
        return _chain_runner(model, x)
    if isinstance(model, StridedModule):
        return _flax_runner(model, variables, x, apply_kwargs, paths, out_stride)
    raise TypeError(f"model must be a list of functions, a jq.chain net or a flax module with "
                    f"init, apply and feature_strides() (jaxeq.analysis.StridedModule), got "
                    f"{type(model).__name__}")


def _pushed_generators(run, x, specs, action, order: list):
    """``(P_0, ..., P_K)`` (each ``(ndim, *y.shape)``), "(input)" first, in execution order;
    the boundary names go into ``order`` (a jitted dict would come back sorted by key)."""
    ndim = x.ndim - 2
    y, hs = run(x, {})
    hs = {"(input)": x, **hs}
    specs = {"(input)": (1,) * ndim, **specs}
    zeros = {k: jnp.zeros_like(v) for k, v in hs.items() if k != "(input)"}

    def out_fn(v, deltas):
        return run(v, deltas)[0]

    _, push = push_forward(out_fn, x, zeros)
    no_delta = jax.tree_util.tree_map(jnp.zeros_like, zeros)
    pushed = {}
    for name, h in hs.items():
        spec = specs.get(name, "invariant")
        gen = generators(h, None if spec == "invariant" else spec, action, ndim)
        if name == "(input)":
            pushed[name] = jax.vmap(lambda t: push(t, no_delta))(gen)
        else:
            pushed[name] = jax.vmap(lambda t, n=name: push(jnp.zeros_like(x),
                                                           {**no_delta, n: t}))(gen)
    order[:] = list(pushed)
    return tuple(pushed.values())


def lie_attribution(model: Any, variables: Any, x: Any, *, action: str = "roll",
                    apply_kwargs: Any = None, paths: Any = None,
                    out_stride: Any = None) -> list[dict]:
    """Each layer's contribution to the network's Lie derivative; they sum to it exactly.

    ``model``: a list of array -> array functions or a ``jq.chain`` net (``variables`` ignored;
    boundaries after every element, strides as :func:`jaxeq.layerwise_equivariance` reads
    them), or a flax module with ``feature_strides()`` (:class:`StridedModule`; boundaries
    after the modules at ``paths``, default the top-level ones that ``feature_strides()``
    lists, and a last one "(output)"; called as ``model.apply(variables, x,
    **apply_kwargs)``, default ``train=False``). A boundary's contribution covers everything
    computed since the previous boundary. ``out_stride``: the stride of a spatial model output
    (flax; default the last boundary's).

    Returns one row per boundary, in execution order: ``path``, ``stride`` (None without
    spatial dims), ``norm`` and ``per_axis`` (per-example summaries as
    :func:`lie_derivative`), ``share`` (``<c_k, L> / ||L||^2`` over the batch: the signed
    fraction of the total, summing to 1), ``contribution`` (``(ndim, *out.shape)``); then a
    row ``"(total)"`` with the network's Lie derivative ``P_0 - P_K``.
    """
    _checks.spatial_rank("x", x)  # validates x
    _checks.choice("action", action, ACTIONS)
    x = jnp.asarray(x)
    run, specs = _runner(model, variables, x, apply_kwargs, paths, out_stride)
    names: list[str] = []
    # the variables enter as arguments: closed over, XLA would get them as constants and
    # constant-fold the zero tangents through every conv while compiling
    values = measure_jit(lambda p, v: _pushed_generators(functools.partial(run, p), v, specs,
                                                     action, names))(variables, x)
    pushed = {k: np.asarray(v) for k, v in zip(names, values)}
    total = pushed[names[0]] - pushed[names[-1]]
    denom = float(np.sum(np.square(total, dtype=np.float64)))
    rows = []
    for prev, name in zip(names[:-1], names[1:]):
        c = pushed[prev] - pushed[name]
        spec = specs.get(name, "invariant")
        rows.append(_lie_row(name, None if spec == "invariant" else spec, c, total, denom))
    rows.append(_lie_row("(total)", None, total, total, denom))
    return rows


def _lie_row(name, stride, c, total, denom) -> dict:
    per_axis, norm = summarize_lie(c)
    dot = float(np.sum(c.astype(np.float64) * total))
    return {"path": name, "stride": stride, "norm": norm, "per_axis": per_axis,
            "share": dot / denom if denom > 0 else np.nan, "contribution": c}
