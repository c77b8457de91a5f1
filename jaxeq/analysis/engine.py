"""Measure where and how much translation equivariance breaks, for any array -> array function.

Every measurement applies the function to all S shifted inputs in ONE jitted call and compares
with the unshifted output moved by ``shift / out_stride``.

How the shifted inputs go through the function (``batching``):

- ``"auto"`` (default): as one real batch of ``S * N`` images (a model's own batch axis, what
  convolutions are fast at) that holds an unshifted copy of ``x``: the zero shift when the
  shifts of an integer action include it, else one more copy. If that copy's output differs
  from ``f(x)`` computed alone (beyond float noise: 1e-4 of max |f(x)| in float32), ``f``
  depends on what else is in its batch (BatchNorm with batch statistics, anything that mixes
  images) and the measurement is redone with ``"vmap"``, so the result is always the per-shift
  one.
- ``"batch"``: the batch without that fallback (the copy is still computed).
- ``"vmap"``: ``jax.vmap`` of ``f`` over the shifts: ``f`` always sees a batch of N, exactly.

The batch is split into chunks of ``chunk_size`` shifts (``lax.map`` over the chunks); left out,
the chunk is as many shifts as ``memory_budget`` bytes hold by an estimate of ``f``'s working
set per image (twice the most bytes its jaxpr's values hold at once, run in order and freed
after their last use, plus its outputs and the input copy; checked against XLA's own memory
analysis in BENCHMARKS.md, "The engine's peak memory"). The default budget is a quarter of the
device memory that is free when the measurement starts where the device reports it (GPUs,
TPUs), at least 2 GiB; 2 GiB on a CPU.

Conventions (shared by every function here):

- ``x`` is ``(N, *spatial, C)`` with 1, 2 or 3 spatial dims; ``shifts`` is an ``(S, ndim)``
  integer array (e.g. :func:`jaxeq.shift_grid`), or a real one for ``action="fractional"``
  (:mod:`jaxeq.analysis.actions`).
- ``action="roll"``: circular shift (:func:`jaxeq.roll`) of input and output.
  ``action="fractional"``: band-limited circular shift (:func:`jaxeq.fractional_shift`) by
  real shifts, expected output ``f(x)`` moved by ``shift / out_stride``: no shift is NaN.
  ``action="translate"``: zero-fill translation (:func:`jaxeq.translate`). The expected output
  is ``f(x)`` translated by ``shift / out_stride``; the pixels that translation vacates have no
  defined expected value (``f(x)`` beyond its canvas was never computed), so they are left out
  of every comparison. Content of ``x`` that leaves the canvas is lost by the action itself: an
  exactly equivariant ``f`` gives zero error only when ``x`` has a zero margin >= |shift|.
- ``out_stride`` (int or one per dim) is the output's stride relative to the input. Only shifts
  that are multiples of it form the subgroup under which equivariance is defined; the error of
  every other shift is reported as **NaN** (never silently compared with a rounded shift).
  With the circular actions each input size must be a multiple of ``out_stride``.
- ``metric="relative"`` (default): ``||f(g x) - g f(x)||_2 / ||g f(x)||_2`` over the compared
  pixels of the whole batch; ``"l2"``: the numerator alone; ``"max_abs"``: the largest
  ``|f(g x) - g f(x)|``.
- ``border=b``: the output pixels closer than ``b`` to an edge form the *border* region, the
  rest the *interior*. For the relative metric both parts share the denominator of the total,
  so ``interior**2 + border**2 == total**2``; an empty interior gives NaN.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from jaxeq import _checks
from jaxeq.analysis.actions import ACTIONS, METRICS, act as _act, expected as _expected
from jaxeq.analysis.actions import (check_batching as _check_batching,  # noqa: F401
                                    check_border as _check_border, check_chunk as _check_chunk,
                                    check_common as _check_common,
                                    check_out_stride as _check_out_stride, format_shift,
                                    off_subgroup)
from jaxeq.analysis.one_copy import one_copy, signature as abstract_signature
from jaxeq.analysis.precision import measure_jit

# working set of one measurement chunk (bytes) where the device reports no memory (a CPU), and
# the least default elsewhere; see default_memory_budget
DEFAULT_MEMORY_BUDGET = 2 * 2**30
# share of an accelerator's free memory a measurement's chunk may take by default: room for what
# the estimate cannot see (a GPU's convolution workspaces and layout copies)
FREE_MEMORY_SHARE = 4


def default_memory_budget(device: Any = None) -> int:
    """The chunking budget when ``memory_budget`` is left out: a 1/FREE_MEMORY_SHARE of
    ``device``'s (default: JAX's first device) free memory, at least DEFAULT_MEMORY_BUDGET; that
    constant where the device reports no memory statistics (CPUs)."""
    device = jax.devices()[0] if device is None else device
    try:
        stats = device.memory_stats()
    except Exception:  # a backend without the query
        stats = None
    if not stats or "bytes_limit" not in stats:
        return DEFAULT_MEMORY_BUDGET
    free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return max(DEFAULT_MEMORY_BUDGET, free // FREE_MEMORY_SHARE)

__all__ = [
    "ACTIONS", "METRICS", "ShiftErrors", "assert_equivariant", "assert_invariant",
    "equivariance_error", "error_map", "invariance_error", "shifted_apply",
]


class ShiftErrors(NamedTuple):
    """Per-shift errors split by region (returned when ``border`` is given); each ``(S,)``."""
    total: np.ndarray
    interior: np.ndarray
    border: np.ndarray


# ----------------------------------------------------------------------------- engine

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
    """Per-shift statistics of one output (NaN for a shift outside its stride's subgroup).
    ``spec`` is a stride tuple (equivariance) or the string "invariant" (compare with the
    unshifted output)."""
    dtype = ref.dtype
    if spec == "invariant":
        expected, valid, in_group = ref, jnp.ones((), dtype), jnp.bool_(True)
        interior = jnp.ones((), dtype)
    else:
        expected, valid, in_group = _expected(ref, s, spec, action)
        interior = jnp.asarray(_interior_mask(ref.shape[1:-1], border), dtype)
    diff = (y - expected) * valid
    # Each statistic is reduced over the channels first: short reductions along the contiguous
    # minor axis, fused into one pass over the output; the regional sums and maxima then run
    # over per-pixel maps C times smaller. (XLA:CPU turns one long reduction over a whole
    # output into a tree of reduce-windows, a pass of its own per statistic.) The maxima are
    # exact; the sums differ from one long sum by float32 rounding only.
    minor = (-1,) if diff.ndim else ()  # a scalar output has no channels
    d2_px = jnp.sum(jnp.square(diff), axis=minor)
    max_px = jnp.max(jnp.abs(diff), axis=minor)
    if spec == "invariant":  # the reference's energy: the same for every shift, computed once
        r2_px = jnp.sum(jnp.square(ref), axis=minor)
    elif action in ("roll", "translate"):
        # an integer shift moves whole pixels, so the expected output's per-pixel energy is the
        # reference's, moved: one small map per shift instead of a pass over the output
        energy = jnp.sum(jnp.square(ref), axis=-1, keepdims=True)  # no shift: computed once
        r2_px = (_expected(energy, s, spec, action)[0] * valid)[..., 0]
    else:
        r2_px = jnp.sum(jnp.square(expected * valid), axis=minor)
    inner = jnp.broadcast_to(interior[..., 0] if interior.ndim else interior, d2_px.shape)
    max_int, max_bor = jnp.max(max_px * inner), jnp.max(max_px * (1 - inner))
    if spec == "invariant":
        n_int = n_all = jnp.asarray(diff.size, jnp.float32)
    else:
        spatial = (1,) + ref.shape[1:-1] + (1,)
        per_pixel = ref.shape[0] * ref.shape[-1]
        valid_map = jnp.broadcast_to(valid, spatial).astype(jnp.float32)
        n_int = jnp.sum(valid_map * jnp.broadcast_to(interior, spatial)) * per_pixel
        n_all = jnp.sum(valid_map) * per_pixel
    stats = {
        "d2_int": jnp.sum(d2_px * inner), "d2_all": jnp.sum(d2_px), "r2_all": jnp.sum(r2_px),
        "max_int": max_int, "max_bor": max_bor, "max_all": jnp.maximum(max_int, max_bor),
        "n_int": n_int, "n_all": n_all,
    }
    if want_map and spec != "invariant":
        stats["map"] = jnp.mean(jnp.abs(diff), axis=(0, diff.ndim - 1))
        stats["map_valid"] = jnp.broadcast_to(valid, (1,) + ref.shape[1:-1] + (1,))[0, ..., 0]
    nan = jnp.asarray(jnp.nan, jnp.result_type(dtype, jnp.float32))
    return {k: jnp.where(in_group, v.astype(nan.dtype), nan) for k, v in stats.items()}


def _measure_all(ys, ref, s, specs, action, border, want_map):
    """Every output's statistics for one shift ``s``, by name."""
    return {name: _compare(ys[name], ref[name], s, spec, action, border, want_map)
            for name, spec in specs.items()}


class _NoBatchAxis(Exception):
    """Raised while tracing a batched measurement: an output does not keep the batch axis."""

    def __init__(self, name, shape, n):
        super().__init__(name, shape, n)
        self.name, self.shape, self.n = name, tuple(shape), n


def _program(features, specs, action, border, chunk, want_map, batched, check_copy=True,
             group_alike=False):
    """The jitted measurement ``(x, shifts, aux) -> ...`` (numpy, one device-to-host copy:
    :mod:`jaxeq.analysis.one_copy`): ``features(aux, x)`` is a dict name ->
    array (``aux``: what the features read besides x, e.g. a model's variables, passed at run
    time so that one compiled program serves new values); ``specs`` name -> stride tuple or
    "invariant".

    ``batched``: the shifted copies go through ``features`` as one real batch of ``chunk * N``
    images per chunk (what a model is fast at), with ``check_copy`` preceded by an unshifted
    copy whose output must reproduce the reference (row 0 of the statistics: the
    batch-independence check, read by :func:`_run`; without it, a zero shift among the shifts
    is that check). Otherwise ``features`` is vmapped over the shifts (exact semantics for any
    function), ``chunk`` shifts at a time. ``chunk`` None: all shifts at once.

    ``select`` (batched only; from :func:`_subgroup_rows`): stride -> (chunks, m) row indices
    per chunk; the outputs of that stride are compared on those rows alone (their subgroup
    shifts, padded with rows outside it), the other rows' statistics are NaN, as the
    comparison itself gives them. None or empty: every row is compared.

    ``group_alike`` (batched only): outputs alike in shape, dtype and stride are compared
    stacked together (:data:`GROUP_ALIKE`); else each on its own.
    """

    def program(x, shifts, aux, select=None):
        ref = features(aux, x)
        n = x.shape[0]
        select = select or {}

        def compare_group(spec, y, r, s):
            """y: (outputs, rows, N, ...) of outputs alike in shape, dtype and stride, r their
            references (outputs, N, ...), s the rows' shifts: statistics (outputs, rows, ...)."""
            def rows_of(yy, rr):
                return jax.vmap(lambda y1, s1: _compare(y1, rr, s1, spec, action, border,
                                                        want_map))(yy, s)
            return jax.vmap(rows_of)(y, r)

        def one(s):
            return _measure_all(features(aux, _act(x, s, action)), ref, s, specs, action,
                                border, want_map)

        def one_batch(cs, sel):
            xs = jax.vmap(lambda s: _act(x, s, action))(cs)  # (k, N, ...)
            ys = features(aux, xs.reshape((-1,) + x.shape[1:]))
            for k, v in ys.items():
                if v.ndim == 0 or v.shape[0] != cs.shape[0] * n:
                    raise _NoBatchAxis(k, v.shape, n)
            ys = {k: v.reshape((cs.shape[0], n) + v.shape[1:]) for k, v in ys.items()}
            stats = {}
            for spec, members in _output_groups(ys, specs, group_alike):
                y = jnp.stack([ys[m] for m in members])
                r = jnp.stack([ref[m] for m in members])
                idx = sel.get(spec) if spec != "invariant" else None
                if idx is None:
                    part = compare_group(spec, y, r, cs)
                else:
                    # only the subgroup's rows: a deep layer's stride leaves few of the shifts
                    part = compare_group(spec, y[:, idx], r, cs[idx])
                    part = jax.tree_util.tree_map(
                        lambda p: jnp.full(p.shape[:1] + (cs.shape[0],) + p.shape[2:], jnp.nan,
                                           p.dtype).at[:, idx].set(p), part)
                for i, m in enumerate(members):
                    stats[m] = {key: v[i] for key, v in part.items()}
            return stats

        if batched:
            zero = jnp.zeros((1, shifts.shape[1]), shifts.dtype)
            rows = shifts.shape[0] + int(check_copy)
            n_chunks, k = _chunking(rows, chunk)
            padded = jnp.concatenate([zero] * int(check_copy) + [shifts]
                                     + [zero] * (n_chunks * k - rows))
            if n_chunks == 1:
                stats = one_batch(padded, {st: i[0] for st, i in select.items()})
            else:
                stats = jax.lax.map(lambda a: one_batch(*a),
                                    (padded.reshape(n_chunks, k, -1), select))
                stats = jax.tree_util.tree_map(
                    lambda a: a.reshape((n_chunks * k,) + a.shape[2:]), stats)
            stats = jax.tree_util.tree_map(lambda a: a[:rows], stats)
        elif chunk is None:
            stats = jax.vmap(one)(shifts)
        else:
            stats = jax.lax.map(one, shifts, batch_size=chunk)
        n_rows = shifts.shape[0] + int(batched and check_copy)
        return _stacked(list(specs), stats, ref, n_rows)

    return one_copy(program, jit=measure_jit)


# the per-shift statistics of every measured output (error maps aside)
STAT_KEYS = ("d2_all", "d2_int", "r2_all", "max_all", "max_int", "max_bor", "n_all", "n_int")
_MAP_KEYS = ("map", "map_valid")


def _stacked(names, stats, ref, n_rows):
    """The program's results with its outputs stacked in ``names`` order (a few arrays to
    bring to the host and read there, not eight per output): see :class:`Measured`."""
    if not names:  # nothing measured (every output skipped): empty tables of the right shape
        none = jnp.zeros((0, n_rows), jnp.float32)
        return ({k: none for k in STAT_KEYS}, {}, jnp.zeros((0,), jnp.float32),
                jnp.zeros((0,), jnp.float32))
    wide = jnp.result_type(*[stats[n]["d2_all"].dtype for n in names])
    per_key = {k: jnp.stack([stats[n][k].astype(wide) for n in names]) for k in STAT_KEYS}
    maps = {n: {k: stats[n][k] for k in _MAP_KEYS} for n in names if "map" in stats[n]}
    ref_dtype = jnp.result_type(jnp.float32, *[ref[n].dtype for n in names])
    scale = jnp.stack([jnp.max(jnp.abs(ref[n])).astype(ref_dtype) for n in names])
    mean_abs = jnp.stack([jnp.mean(jnp.abs(ref[n])).astype(ref_dtype) for n in names])
    return per_key, maps, scale, mean_abs


class Measured(NamedTuple):
    """A measurement's results on the host, its outputs in the order ``names``: ``stats`` maps
    each of :data:`STAT_KEYS` to an (outputs, shifts) array; ``maps`` name -> {"map",
    "map_valid"} per shift, when error maps were asked for; ``scale`` and ``mean_abs``
    (outputs,): max and mean |f(x)| of each output. A shift outside an output's subgroup has
    NaN statistics."""
    names: tuple
    stats: dict
    maps: dict
    scale: np.ndarray
    mean_abs: np.ndarray

    def of(self, name: str) -> dict:
        """One output's per-shift statistics (and error maps), by key."""
        i = self.names.index(name)
        return {**{k: v[i] for k, v in self.stats.items()}, **self.maps.get(name, {})}

    def rows(self, keep) -> Measured:
        """The same results for the shift rows ``keep`` (a slice or index array) only."""
        return self._replace(
            stats={k: v[:, keep] for k, v in self.stats.items()},
            maps={n: {k: v[keep] for k, v in m.items()} for n, m in self.maps.items()})


# Whether the batched program compares outputs alike in shape, dtype and stride (the layers of
# one stage of a net) stacked together: one set of reductions per stage instead of per layer,
# far fewer ops (each a kernel launch on a GPU), but the stack copies every feature map once,
# which costs more than it saves on XLA:CPU (BENCHMARKS.md, "Comparing alike outputs
# together"). Off until a GPU measures it.
GROUP_ALIKE = False


def _output_groups(ys: dict, specs: dict, together: bool) -> list:
    """[(spec, names)] in ``specs`` order: the outputs alike in shape, dtype and spec together
    when ``together``, else each output on its own."""
    out: dict = {}
    for name, spec in specs.items():
        key = (tuple(ys[name].shape), str(ys[name].dtype), spec) if together else name
        out.setdefault(key, (spec, []))[1].append(name)
    return list(out.values())


def _chunking(rows: int, chunk: int | None) -> tuple[int, int]:
    """(number of chunks, rows per chunk) for ``rows`` rows in chunks of at most ``chunk``: as
    many chunks as needed, evened out (fewer than one padding row per chunk)."""
    k = rows if chunk is None else min(chunk, rows)
    n_chunks = -(-rows // k)
    return n_chunks, -(-rows // n_chunks)


def _subgroup_rows(shifts: np.ndarray, specs: dict, action: str, chunk: int | None,
                   check_copy: bool = True) -> dict:
    """For the batched program: stride -> (chunks, m) int32 row indices within each chunk of
    the rows (the check copy's row 0 with ``check_copy``, then the shifts) whose shift is a
    multiple of the stride, padded to the same m with distinct rows outside the subgroup (their
    statistics are NaN anyway). Strides whose subgroup is every row are left out (compared on
    every row)."""
    if action not in ("roll", "translate"):  # every fractional shift has an expected output
        return {}
    all_rows = np.concatenate([np.zeros((int(check_copy), shifts.shape[1]), shifts.dtype),
                               shifts])
    rows = len(all_rows)
    n_chunks, k = _chunking(rows, chunk)
    out = {}
    for spec in {sp for sp in specs.values() if sp != "invariant"}:
        needed = np.zeros(n_chunks * k, bool)
        needed[:rows] = np.all(all_rows % np.asarray(spec) == 0, axis=1)
        needed = needed.reshape(n_chunks, k)
        m = int(needed.sum(axis=1).max())
        if m == k:
            continue
        # per chunk: the subgroup's rows in order, then the others (a stable sort on "not needed")
        out[spec] = np.argsort(~needed, axis=1, kind="stable")[:, :m].astype(np.int32)
    return out


@functools.lru_cache(maxsize=64)
def _single_output_program(f, spec, action, border, chunk, want_map, batched, check_copy):
    # Cached per function and settings: repeated calls with the same f (a test sweep, a
    # benchmark) reuse one compiled program instead of re-tracing a fresh closure each time.
    return _program(lambda _, v: {"y": f(v)}, {"y": spec}, action, border, chunk, want_map,
                    batched, check_copy)


@functools.lru_cache(maxsize=16)
def _features_program(features, spec_items, action, border, chunk, want_map, batched,
                      check_copy, group_alike=False):
    # Cached per hashable ``features(aux, x)`` (e.g. a flax model and its apply settings) and
    # settings; the variables come in as ``aux`` at run time, so repeated calls (a sweep over
    # checkpoints, a benchmark) compile once.
    return _program(features, dict(spec_items), action, border, chunk, want_map, batched,
                    check_copy, group_alike=group_alike)


@functools.lru_cache(maxsize=64)
def _single_output_bytes(f, shape, dtype) -> int:
    return _bytes_per_image(lambda v: {"y": f(v)}, jax.ShapeDtypeStruct(shape, dtype))


def _value_bytes(v) -> int:
    aval = getattr(v, "aval", None)
    if not hasattr(aval, "shape"):
        return 0
    try:
        itemsize = np.dtype(aval.dtype).itemsize
    except TypeError:  # an extended dtype (a PRNG key): not an image-sized buffer
        return 0
    return int(np.prod(aval.shape, dtype=np.int64)) * itemsize


def _nested_jaxprs(eqn):
    for param in eqn.params.values():
        for sub in (param if isinstance(param, (tuple, list)) else (param,)):
            if isinstance(sub, jcore.ClosedJaxpr):
                yield sub.jaxpr
            elif isinstance(sub, jcore.Jaxpr):
                yield sub


def _jaxpr_peak_bytes(jaxpr) -> int:
    """Most bytes the values ``jaxpr`` computes hold at once when its equations run in order
    and each value is freed after its last use; a nested call (a jit, a custom derivative, a
    loop body) adds its own peak while it runs. Its inputs (the image, the weights) are not
    counted."""
    last_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if isinstance(v, jcore.Var):
                last_use[v] = i
    for v in jaxpr.outvars:
        if isinstance(v, jcore.Var):
            last_use[v] = len(jaxpr.eqns)  # an output lives to the end
    made: set = set()
    live = peak = 0
    for i, eqn in enumerate(jaxpr.eqns):
        out = sum(_value_bytes(v) for v in eqn.outvars)
        inner = max((_jaxpr_peak_bytes(sub) for sub in _nested_jaxprs(eqn)), default=0)
        peak = max(peak, live + max(out, inner))  # its inputs are still held while it runs
        live += out
        made.update(eqn.outvars)
        for v in eqn.outvars:
            if v not in last_use:  # never read
                live -= _value_bytes(v)
        for v in {v for v in eqn.invars if isinstance(v, jcore.Var)}:
            if v in made and last_use[v] == i:
                live -= _value_bytes(v)
    return peak


# XLA neither runs a program's ops in its jaxpr's order nor frees every buffer at its last use,
# so its peak can exceed the in-order one (it does for ResNet-50; BENCHMARKS.md, "The engine's
# peak memory"): the estimate takes twice the in-order peak
PEAK_MARGIN = 2


def _working_set_bytes(closed_jaxpr, x) -> int:
    """Estimate of what one chunk needs per batch element of ``x`` for a features function
    traced to ``closed_jaxpr``: PEAK_MARGIN x its values' in-order peak
    (:func:`_jaxpr_peak_bytes`), plus its outputs again (the comparisons' differences) and the
    shifted input copy."""
    jaxpr = closed_jaxpr.jaxpr
    total = (PEAK_MARGIN * _jaxpr_peak_bytes(jaxpr) + sum(_value_bytes(v) for v in jaxpr.outvars)
             + int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize)
    return max(1, total // max(1, x.shape[0]))


def _bytes_per_image(features, x) -> int:
    """Working-set estimate of ``features`` per batch element (:func:`_working_set_bytes`)."""
    return _working_set_bytes(jax.make_jaxpr(features)(x), x)


# rtol of the batch-independence check: a model run on a bigger batch may take another conv
# algorithm, which moves float32 results by ~1e-6 relative; a batch-dependent f (BatchNorm with
# batch statistics, anything that mixes images) moves them by far more
_BATCH_RTOL = {2: 3e-2, 4: 1e-4, 8: 1e-4}


def _batch_consistent(measured: Measured, dtype, row: int = 0) -> bool:
    """Whether the unshifted copy inside the batch (shift row ``row``) reproduced the
    reference, for every output."""
    rtol = _BATCH_RTOL.get(np.dtype(dtype).itemsize, 1e-4)
    worst = measured.stats["max_all"][:, row]
    return bool(np.all(worst <= rtol * measured.scale + 1e-30))  # NaN fails


class Plan(NamedTuple):
    """One measurement as it will run: the compiled program (:func:`_program`), its arguments
    ``(x, shifts, aux, select)``, and how its rows are laid out."""
    program: Callable
    args: tuple
    batched: bool
    chunk: int | None  # shifts per chunk (batched: rows, the check copy included)
    check_copy: bool  # row 0 is an extra unshifted copy (no zero shift among the shifts)
    check_row: int | None  # the row whose output must reproduce the reference (batched)


def _plan(features, x, shifts, specs, action, border, chunk_size, want_map,
          batching="auto", memory_budget=None, per_image=None) -> Plan:
    """The :class:`Plan` of a measurement (arguments as :func:`_run`'s); ``batching`` "auto"
    plans the batched measurement."""
    single = isinstance(features, tuple) and features[0] == "single"
    with_aux = isinstance(features, tuple) and features[0] == "with_aux"
    batched = batching != "vmap"
    chunk = chunk_size
    if batched and chunk is None:
        per_image = _per_image_bytes(features, x) if per_image is None else per_image
        budget = default_memory_budget() if memory_budget is None else int(memory_budget)
        chunk = max(1, budget // (per_image * x.shape[0]))
    host_shifts = np.asarray(shifts)
    # The batch-independence check needs f(x) inside the batch. A zero shift of an integer
    # action is x itself, bit for bit: when the shifts hold one, its row is the check and no
    # extra copy runs.
    zero_rows = (np.flatnonzero(np.all(host_shifts == 0, axis=1))
                 if batched and action in ("roll", "translate") else [])
    check_copy = batched and len(zero_rows) == 0
    check_row = 0 if check_copy else (int(zero_rows[0]) if len(zero_rows) else None)
    settings = (action, border, chunk, want_map, batched, check_copy)
    aux = None
    if single:
        (name, spec), = specs.items()
        try:
            compiled = _single_output_program(features[1], spec, *settings)
        except TypeError:  # an unhashable callable: no caching
            compiled = _program(lambda _, v: {"y": features[1](v)}, specs, *settings)
    elif with_aux:
        _, g, aux = features
        try:
            compiled = _features_program(g, tuple(specs.items()), *settings,
                                         group_alike=GROUP_ALIKE)
        except TypeError:  # unhashable: no caching
            compiled = _program(g, specs, *settings, group_alike=GROUP_ALIKE)
    else:
        compiled = _program(lambda _, v: features(v), specs, *settings, group_alike=GROUP_ALIKE)
    select = _subgroup_rows(host_shifts, specs, action, chunk, check_copy) if batched else {}
    return Plan(compiled, (x, shifts, aux, select), batched, chunk, check_copy, check_row)


def _run(features, x, shifts, specs, action, border, chunk_size, want_map,
         batching="auto", memory_budget=None, per_image=None):
    """Run a measurement; ``features`` is a callable returning a dict (traced afresh),
    ``("single", f)`` for one-output functions (compiled once per f and settings), or
    ``("with_aux", g, aux)`` for ``g(aux, x)`` returning a dict (compiled once per hashable g
    and settings; ``aux`` passed at run time). Returns a :class:`Measured`.

    ``batching``: "batch" runs the shifted copies as one real batch (chunks of ``chunk_size``
    shifts, or as many as ``memory_budget`` bytes hold); "vmap" vmaps ``features`` over the
    shifts; "auto" batches and checks that an unshifted copy in the batch reproduces the
    reference, else measures again with "vmap" (a batch-dependent function, e.g. BatchNorm in
    training mode, then gets exactly the per-shift semantics). ``per_image``: the working-set
    estimate per image where the caller has it (else worked out here).
    """
    plan = _plan(features, x, shifts, specs, action, border, chunk_size, want_map, batching,
                 memory_budget, per_image)
    try:
        measured = Measured(tuple(specs), *plan.program(*plan.args))
    except _NoBatchAxis as err:
        # an output without the batch axis first (a sum over the batch, say) depends on what
        # else is in the batch by construction: only vmap can measure it
        if batching == "auto":
            return _run(features, x, shifts, specs, action, border, chunk_size, want_map, "vmap")
        what = ("f's output" if isinstance(features, tuple) and features[0] == "single"
                else f"output {err.name!r}")
        raise ValueError(f"batching='batch' needs {what} to keep x's batch axis first (size "
                         f"{err.n} per input batch), got shape {err.shape}; use "
                         f"batching='vmap' (or the default 'auto')") from None
    if plan.batched:
        if batching == "auto" and not _batch_consistent(measured, x.dtype, plan.check_row):
            return _run(features, x, shifts, specs, action, border, chunk_size, want_map,
                        "vmap")
        if plan.check_copy:
            measured = measured.rows(slice(1, None))
    return measured


class AuxLayout(NamedTuple):
    """What one abstract trace of ``g(aux, x)`` tells: outputs in the order ``g`` made them,
    their shapes, and the working-set estimate per batch element (:func:`_working_set_bytes`)."""
    order: tuple
    shapes: dict
    bytes_per_image: int


@functools.lru_cache(maxsize=32)
def _aux_layout_cached(g, aux_sig, x_shape, x_dtype) -> AuxLayout:
    treedef, avals = aux_sig
    aux = jax.tree_util.tree_unflatten(treedef, [
        jax.ShapeDtypeStruct(shape, dtype, weak_type=weak) for shape, dtype, weak in avals])
    order: list = []

    def recording(a, v):  # pytrees sort dict keys: keep the order g made them in
        out = g(a, v)
        order[:] = list(out)
        return out

    jaxpr, shapes = jax.make_jaxpr(recording, return_shape=True)(
        aux, jax.ShapeDtypeStruct(x_shape, x_dtype))
    return AuxLayout(tuple(order), shapes,
                     _working_set_bytes(jaxpr, jax.ShapeDtypeStruct(x_shape, x_dtype)))


def aux_layout(g, aux, x) -> AuxLayout:
    """:class:`AuxLayout` of ``g(aux, x)``, traced once per hashable ``g`` and shapes of
    ``aux`` and ``x`` (a model's layer table or chunking then costs no trace per call)."""
    try:
        return _aux_layout_cached(g, abstract_signature(aux), tuple(x.shape), np.dtype(x.dtype))
    except TypeError:  # an unhashable g
        return _aux_layout_cached.__wrapped__(g, abstract_signature(aux), tuple(x.shape),
                                              np.dtype(x.dtype))


def _per_image_bytes(features, x) -> int:
    if isinstance(features, tuple) and features[0] == "with_aux":
        _, g, aux = features
        return aux_layout(g, aux, x).bytes_per_image
    if isinstance(features, tuple):
        try:
            return _single_output_bytes(features[1], tuple(x.shape), np.dtype(x.dtype))
        except TypeError:  # unhashable
            return _bytes_per_image(lambda v: {"y": features[1](v)}, x)
    return _bytes_per_image(features, x)


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
    """A jitted ``(x, shifts) -> (S, *f(x).shape)``: ``f`` on every shifted input, vmapped
    (``batching="vmap"`` semantics: ``f`` sees batches of N), for benchmarks and for functions
    whose outputs the measurements here do not cover."""
    _checks.choice("action", action, ACTIONS)

    @measure_jit
    def apply(x, shifts):
        return jax.vmap(lambda s: f(_act(x, s, action)))(shifts)

    return apply


def equivariance_error(f: Callable, x: Any, shifts: Any, *, action: str = "roll",
                       out_stride: Any = None, border: int | None = None,
                       metric: str = "relative", chunk_size: int | None = None,
                       batching: str = "auto", memory_budget: int | None = None):
    """Per-shift equivariance error of ``f``: compares ``f(g_s x)`` with ``g_{s/out_stride} f(x)``.

    Returns an ``(S,)`` float numpy array (NaN for shifts that are not multiples of
    ``out_stride``), or, when ``border`` is given, a :class:`ShiftErrors` with the ``total``,
    ``interior`` and ``border`` errors (see the module docstring for all conventions).
    ``out_stride`` is ``f``'s total stride (an int or one per spatial dim); left out, it is 1
    and an ``f`` that visibly downsamples is refused with the stride it likely has.
    """
    ndim, x, shifts = _check_common(x, shifts, action, metric)
    strides = _check_out_stride(1 if out_stride is None else out_stride, ndim, x.shape, action)
    border = _check_border(border)
    chunk_size = _check_chunk(chunk_size)
    _check_batching(batching, memory_budget)
    out = jax.eval_shape(f, x)
    _check_spatial_output(out, x, "equivariance_error")
    if out_stride is None:
        _check_unstrided(out.shape, x.shape)
    if border is not None and any(2 * border >= n for n in out.shape[1:-1]):
        raise ValueError(f"border={border} leaves no interior in the output of spatial shape "
                         f"{out.shape[1:-1]}; use border < half the smallest size")
    measured = _run(("single", f), x, shifts, {"y": strides}, action, border, chunk_size,
                    False, batching, memory_budget)
    total, inner, outer = _errors(measured.of("y"), metric, border)
    if border is None:
        return total
    return ShiftErrors(total, inner, outer)


def _check_unstrided(out_shape: tuple, x_shape: tuple) -> None:
    """With out_stride left at its default (1), refuse an ``f`` whose output is at most about
    half the input in some spatial dim: a strided ``f`` compared at stride 1 gives large
    errors that mean nothing. Padding moves sizes a little (a deep "full" net grows them a
    lot), so a stated out_stride is trusted as it is."""
    sizes, outs = x_shape[1:-1], out_shape[1:-1]
    ratios = tuple(n / max(m, 1) for n, m in zip(sizes, outs))
    if all(r < 1.8 for r in ratios):
        return
    meant = tuple(max(1, round(r)) for r in ratios)
    raise ValueError(f"f maps spatial size {sizes} to {outs}: pass its total stride as "
                     f"out_stride (likely {meant[0] if len(set(meant)) == 1 else meant}), or "
                     f"out_stride=1 if it is not strided and only crops")


def _check_spatial_output(out, x, who):
    if not hasattr(out, "shape") or len(out.shape) != x.ndim:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{who} needs f to return an (N, *spatial, C) array with the rank of x "
                         f"({x.ndim}), got {shape}; use invariance_error for outputs without "
                         f"spatial dims")


def invariance_error(f: Callable, x: Any, shifts: Any, *, action: str = "roll",
                     metric: str = "relative", chunk_size: int | None = None,
                     batching: str = "auto", memory_budget: int | None = None) -> np.ndarray:
    """Per-shift invariance error ``||f(g_s x) - f(x)|| / ||f(x)||`` (metric as in
    :func:`equivariance_error`); ``f`` may return any array (e.g. logits ``(N, K)``)."""
    _, x, shifts = _check_common(x, shifts, action, metric)
    chunk_size = _check_chunk(chunk_size)
    _check_batching(batching, memory_budget)
    measured = _run(("single", f), x, shifts, {"y": "invariant"}, action, None, chunk_size,
                    False, batching, memory_budget)
    return _errors(measured.of("y"), metric, None)[0]


def _fail_message(kind, action, shifts, stats, scale, atol, rtol, rel):
    worst = int(np.nanargmax(stats["max_all"]))
    bad = int(np.sum(stats["max_all"] > atol + rtol * scale))
    return (f"f is not {kind} under action={action!r}: worst shift "
            f"{format_shift(shifts[worst])} has max |difference| "
            f"{stats['max_all'][worst]:.3e} (allowed atol + rtol * scale = {atol:g} + {rtol:g} * "
            f"{scale:.3e}) and relative L2 error {rel[worst]:.3e}; {bad} of {len(shifts)} "
            f"shifts fail")


def assert_equivariant(f: Callable, x: Any, shifts: Any, *, action: str = "roll",
                       out_stride: Any = 1, atol: float = 1e-6, rtol: float = 1e-5,
                       chunk_size: int | None = None,
                       batching: str = "auto", memory_budget: int | None = None) -> None:
    """Raise ``AssertionError`` unless ``f(g_s x) == g_{s/out_stride} f(x)`` for every shift,
    within ``|difference| <= atol + rtol * max|f(x)|`` at every compared pixel (``rtol`` is
    relative to the output scale). The message names the worst shift and its error.

    Every shift must be a multiple of ``out_stride`` (equivariance is only defined on that
    subgroup; ``equivariance_error`` reports the others as NaN).
    """
    ndim, x, shifts = _check_common(x, shifts, action)
    strides = _check_out_stride(out_stride, ndim, x.shape, action)
    chunk_size = _check_chunk(chunk_size)
    _check_batching(batching, memory_budget)
    host = np.asarray(shifts)
    off = off_subgroup(host, strides, action)
    if len(off):
        raise ValueError(f"shifts {off[:4].tolist()}{' ...' if len(off) > 4 else ''} are not "
                         f"multiples of out_stride={strides}: equivariance is defined only on "
                         f"that subgroup; use jaxeq.shift_grid(m, step=...) or "
                         f"equivariance_error (which reports them as NaN)")
    _check_spatial_output(jax.eval_shape(f, x), x, "assert_equivariant")
    measured = _run(("single", f), x, shifts, {"y": strides}, action, None, chunk_size, False,
                    batching, memory_budget)
    st, scale = measured.of("y"), float(measured.scale[0])
    if np.any(st["max_all"] > atol + rtol * scale):
        rel = _errors(st, "relative", None)[0]
        raise AssertionError(_fail_message("equivariant", action, host, st, scale, atol, rtol,
                                           rel))


def assert_invariant(f: Callable, x: Any, shifts: Any, *, action: str = "roll",
                     atol: float = 1e-6, rtol: float = 1e-5,
                     chunk_size: int | None = None,
                     batching: str = "auto", memory_budget: int | None = None) -> None:
    """Raise ``AssertionError`` unless ``f(g_s x) == f(x)`` for every shift within
    ``atol + rtol * max|f(x)|``; the message names the worst shift and its error."""
    _, x, shifts = _check_common(x, shifts, action)
    chunk_size = _check_chunk(chunk_size)
    _check_batching(batching, memory_budget)
    measured = _run(("single", f), x, shifts, {"y": "invariant"}, action, None, chunk_size,
                    False, batching, memory_budget)
    st, scale = measured.of("y"), float(measured.scale[0])
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
              chunk_size: int | None = None,
              batching: str = "auto", memory_budget: int | None = None) -> np.ndarray:
    """Per-output-pixel error ``|f(g_s x) - g_s' f(x)|``, averaged over the batch, the channels
    and the subgroup shifts for which that pixel is compared, divided by the mean ``|f(x)|``.

    Returns an array of the output's spatial shape; pixels never compared are NaN. A zero-padded
    conv shows its border leak as a bright frame.
    """
    ndim, x, shifts = _check_common(x, shifts, action)
    strides = _check_out_stride(out_stride, ndim, x.shape, action)
    chunk_size = _check_chunk(chunk_size)
    _check_batching(batching, memory_budget)
    _check_spatial_output(jax.eval_shape(f, x), x, "error_map")
    if len(off_subgroup(shifts, strides, action)) == len(shifts):
        raise ValueError(f"no shift is a multiple of out_stride={strides}")
    measured = _run(("single", f), x, shifts, {"y": strides}, action, None, chunk_size, True,
                    batching, memory_budget)
    return _reduce_map(measured.of("y"), measured.mean_abs[0])
