"""Timing harness: jaxeq and its PyTorch counterpart in the same run, alternating.

One *row* compares one jaxeq callable with one or more baseline callables (PyTorch eager NCHW,
PyTorch channels_last, a Python loop, ...). Before anything is timed, the outputs of the two
sides are compared (``agree``); a row whose outputs disagree is reported without timings, so a
fast wrong row cannot appear. Timing: ``warmup`` untimed calls of each side, then ``repeats``
rounds in which every side runs once, in a rotating order (so drift and neighbours' load hit
all sides alike); the median, min and max of the rounds are reported.

Callables passed to :func:`compare` must block until their work is done (call
``jax.block_until_ready`` inside); stateful steps (a train step that updates its parameters)
keep their state in a closure.
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxeq import _checks

# Keys every row has (the JSON contract of issue #8 and of BENCHMARKS.md).
ROW_KEYS = ("row", "group", "torch_variant", "jaxeq_median_s", "jaxeq_min_s", "jaxeq_max_s",
            "torch_median_s", "torch_min_s", "torch_max_s", "speedup", "agree", "max_rel_diff",
            "repeats", "skipped", "command", "extra")

# A side faster than this gets about this long of its own untimed calls before each timed one
# (compare): the other runtime's threads spin for a few ms after its call (BENCHMARKS.md,
# "Alternating with PyTorch"), a small fraction of anything longer.
SETTLE_S = 0.2
MAX_SETTLE_CALLS = 50


@dataclasses.dataclass
class Check:
    """How to compare the two sides' outputs: ``max|a - b| <= atol + rtol * max|b|`` per leaf.

    ``leaf_rtols``, when given, holds one ``rtol`` per leaf (in :func:`leaf_rel_diffs` order) in
    place of the shared ``rtol``: leaves of one output can differ in how exactly they are
    computable (a loss vs a nearly cancelling weight update)."""
    rtol: float = 1e-4
    atol: float = 0.0
    leaf_rtols: tuple[float, ...] | None = None

    def rtols(self, n_leaves: int) -> tuple[float, ...]:
        if self.leaf_rtols is None:
            return (self.rtol,) * n_leaves
        if len(self.leaf_rtols) != n_leaves:
            raise ValueError(f"Check.leaf_rtols has {len(self.leaf_rtols)} entries; the outputs "
                             f"have {n_leaves} leaves")
        return tuple(self.leaf_rtols)


def _leaves(tree: Any) -> list[np.ndarray]:
    if isinstance(tree, Mapping):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for t in tree for leaf in _leaves(t)]
    if hasattr(tree, "detach"):  # a torch tensor
        tree = tree.detach().float().cpu().numpy()
    return [np.asarray(tree, dtype=np.float64)]


def _leaf_pairs(ours: Any, ref: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    a, b = _leaves(ours), _leaves(ref)
    if len(a) != len(b):
        raise ValueError(f"outputs have {len(a)} and {len(b)} leaves; they must match")
    for x, y in zip(a, b):
        if x.shape != y.shape:
            raise ValueError(f"output shapes differ: {x.shape} vs {y.shape}")
    return list(zip(a, b))


def leaf_rel_diffs(ours: Any, ref: Any) -> list[float]:
    """``max|a - b| / max|b|`` per matching leaf of two pytrees (lists/dicts; dict keys sorted);
    the absolute difference where ``b`` is all zero, ``inf`` where ``a`` is not finite."""
    out = []
    for x, y in _leaf_pairs(ours, ref):
        if x.size and not np.all(np.isfinite(x)):
            out.append(float("inf"))
            continue
        scale = float(np.max(np.abs(y))) if y.size else 0.0
        err = float(np.max(np.abs(x - y))) if x.size else 0.0
        out.append(err / scale if scale > 0 else err)
    return out


def max_rel_diff(ours: Any, ref: Any) -> float:
    """Largest :func:`leaf_rel_diffs` entry: the worst leaf."""
    return max(leaf_rel_diffs(ours, ref), default=0.0)


def agree(ours: Any, ref: Any, check: Check) -> tuple[bool, float]:
    """(every leaf within its tolerance in ``check``, worst relative difference)."""
    pairs = _leaf_pairs(ours, ref)
    ok = True
    for (x, y), rtol in zip(pairs, check.rtols(len(pairs))):
        scale = float(np.max(np.abs(y))) if y.size else 0.0
        if not np.all(np.isfinite(x)) or float(np.max(np.abs(x - y), initial=0.0)) > (
                check.atol + rtol * scale):
            ok = False
    return ok, max_rel_diff(ours, ref)


def _stats(ts: list[float]) -> dict[str, float]:
    return {"median_s": float(np.median(ts)), "min_s": float(np.min(ts)),
            "max_s": float(np.max(ts))}


def time_alternating(fns: Mapping[str, Callable[[], Any]], *, repeats: int = 5,
                     warmup: int = 2, settle: int | Mapping[str, int] = 0
                     ) -> dict[str, list[float]]:
    """Per-name lists of ``repeats`` wall times; each round runs every fn once, rotating order.

    ``settle``: untimed calls of the same fn right before each timed one (one count for all, or
    per name). A runtime's worker threads can keep spinning for a while after its call returns
    (PyTorch's OpenMP pool does), taking cores from whichever fn runs next; calls of the same fn
    absorb that, so each fn is timed in its own steady state (BENCHMARKS.md, "Alternating with
    PyTorch")."""
    _checks.int_at_least("repeats", repeats, 1)
    _checks.int_at_least("warmup", warmup, 0)
    names = list(fns)
    settles = dict(settle) if isinstance(settle, Mapping) else dict.fromkeys(names, settle)
    for n in names:
        _checks.int_at_least("settle", settles.setdefault(n, 0), 0)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            for _ in range(settles[n]):
                fns[n]()
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def median_s(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` calls after ``warmup`` calls (the
    one-function case of :func:`time_alternating`, for one-off scripts)."""
    return float(np.median(time_alternating({"fn": fn}, repeats=repeats, warmup=warmup)["fn"]))


def skipped_row(row: str, group: str, reason: str, torch_variant: str = "-",
                command: str = "") -> dict:
    """A row that was not run, with the reason (never a made-up number)."""
    out = {k: None for k in ROW_KEYS}
    out.update(row=row, group=group, torch_variant=torch_variant, skipped=reason,
               agree=None, command=command, extra={})
    return out


def compare(row: str, group: str, jaxeq_fn: Callable[[], Any],
            baselines: Mapping[str, Callable[[], Any]], *,
            outputs: Callable[[], tuple[Any, Mapping[str, Any]]] | None = None,
            check: Check | None = None, repeats: int = 5, warmup: int = 2,
            settle_s: float | None = None, command: str = "",
            extra: Mapping[str, Any] | None = None) -> list[dict]:
    """Time ``jaxeq_fn`` against each baseline in one alternating run; one row per baseline.

    A side whose warm call takes less than ``settle_s`` seconds (default ``SETTLE_S``) gets
    untimed calls of its own before each timed one, about ``settle_s`` seconds of them (see
    :func:`time_alternating`); longer calls carry the other side's idle threads only as a small
    fraction.

    ``outputs()`` returns ``(jaxeq_output, {variant: baseline_output})``, computed once before
    timing and compared with ``check``; a variant that disagrees gets ``agree=False`` and no
    timings. Without ``outputs`` the row has ``agree=None`` (nothing comparable, e.g. two
    implementations whose results are checked elsewhere).
    """
    check = check or Check()
    verdict: dict[str, tuple[bool | None, float | None]] = {v: (None, None) for v in baselines}
    if outputs is not None:
        ours, refs = outputs()
        for v in baselines:
            verdict[v] = agree(ours, refs[v], check)
    timed = {v: f for v, f in baselines.items() if verdict[v][0] is not False}
    times = {}
    if timed:
        fns = {"__jaxeq__": jaxeq_fn, **timed}
        settle_s = SETTLE_S if settle_s is None else settle_s
        settle = _settle_counts(fns, warmup, settle_s)
        times = time_alternating(fns, repeats=repeats, warmup=0, settle=settle)
    rows = []
    for v in baselines:
        ok, rel = verdict[v]
        out = {k: None for k in ROW_KEYS}
        out.update(row=row, group=group, torch_variant=v, agree=ok, max_rel_diff=rel,
                   repeats=repeats, command=command, extra=dict(extra or {}))
        if v in timed:
            out["extra"]["settle_calls"] = {"jaxeq": settle["__jaxeq__"], "torch": settle[v],
                                            "settle_s": settle_s}
            j, t = _stats(times["__jaxeq__"]), _stats(times[v])
            out.update({f"jaxeq_{k}": x for k, x in j.items()})
            out.update({f"torch_{k}": x for k, x in t.items()})
            out["speedup"] = t["median_s"] / j["median_s"]
        else:
            out["skipped"] = (f"outputs disagree (relative difference per leaf "
                              f"{_fmt(leaf_rel_diffs(ours, refs[v]))} vs rtol per leaf "
                              f"{_fmt(check.rtols(len(_leaves(ours))))}); not timed")
        rows.append(out)
    return rows


def _settle_counts(fns: Mapping[str, Callable[[], Any]], warmup: int,
                   settle_s: float) -> dict[str, int]:
    """Runs the ``warmup`` calls (a round of :func:`time_alternating`, its last one timed) and
    returns how many untimed calls fill ``settle_s`` seconds before each timed one: 0 for a fn
    whose last warm-up call took ``settle_s`` or longer, or when there is no warm-up to time."""
    if warmup == 0:
        return dict.fromkeys(fns, 0)
    last = {n: t[0] for n, t in time_alternating(fns, repeats=1, warmup=warmup - 1).items()}
    return {n: 0 if t >= settle_s else min(MAX_SETTLE_CALLS, math.ceil(settle_s / max(t, 1e-6)))
            for n, t in last.items()}


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def rows_or_error(row: str, group: str, make_rows: Callable[[], list[dict]],
                  command: str = "") -> list[dict]:
    """``make_rows()``, or one skipped row naming the error: a row that cannot run is reported,
    never hidden."""
    try:
        return make_rows()
    except Exception as err:
        return [skipped_row(row, group, f"error: {type(err).__name__}: {str(err)[:300]}",
                            command=command)]


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Machine, versions, XLA flags and thread counts (recorded in every JSON row)."""
    import jax
    import jaxlib
    info = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
    }
    try:
        import torch
        info.update(torch=torch.__version__, torch_num_threads=torch.get_num_threads(),
                    torch_num_interop_threads=torch.get_num_interop_threads())
        if torch.cuda.is_available():
            info.update(gpu=torch.cuda.get_device_name(),
                        torch_cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                        torch_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    except ImportError:
        info.update(torch=None)
    return info


def import_torch():
    """torch, or None when it is not installed (rows are then reported as skipped)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


NO_TORCH = "torch is not installed (pip install -e '.[bench]')"


def logged(log: Callable[[dict], Any], rows: list[dict]) -> list[dict]:
    """``rows``, each passed to ``log`` first: the command prints it and adds it to the --json
    file as soon as its cell is done, not when the whole group is."""
    for r in rows:
        log(r)
    return rows


def wanted(row: str, only: str | None) -> bool:
    """Whether ``--only`` selects this row id: it contains the substring, or one of several
    separated by commas."""
    return only is None or any(part in row for part in only.split(",") if part)


def torch_device(device: str) -> str:
    """torch device string for ``--device``."""
    return "cuda" if device == "gpu" else "cpu"


def sync_torch(device: str) -> None:
    if device == "gpu":
        import torch
        torch.cuda.synchronize()


def count_flops(fn: Callable, *args) -> int:
    """Multiply-add FLOPs (2 per MAC) of the convolutions and dots in ``fn``'s jaxpr.

    Elementwise work (BatchNorm, ReLU, pads) is not counted: this is the usual "model FLOPs"
    that a matmul peak bounds.
    """
    import jax
    total = 0

    def walk(jaxpr):
        nonlocal total
        for e in jaxpr.eqns:
            name = e.primitive.name
            if name == "conv_general_dilated":
                out = e.outvars[0].aval.shape
                k = e.invars[1].aval.shape
                spec = e.params["dimension_numbers"].rhs_spec  # (out, in, *spatial)
                taps = int(np.prod([k[i] for i in spec[2:]]))
                total += 2 * int(np.prod(out)) * taps * int(k[spec[1]])
            elif name == "dot_general":
                (lc, _), _ = e.params["dimension_numbers"]
                a = e.invars[0].aval.shape
                total += 2 * int(np.prod(e.outvars[0].aval.shape)) * int(
                    np.prod([a[i] for i in lc]))
            for v in e.params.values():
                for sub in (v if isinstance(v, (list, tuple)) else [v]):
                    inner = getattr(sub, "jaxpr", None)
                    if inner is not None and hasattr(inner, "eqns"):
                        walk(inner)
                    elif hasattr(sub, "eqns"):
                        walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return total


def matmul_peak_gflops(n: int = 4096, repeats: int = 5, quick: bool = False) -> float:
    """Measured fp32 matmul throughput (GFLOP/s) of this device: best of ``repeats`` big
    ``jnp.dot`` calls (the best, because it estimates the peak, not the typical)."""
    import jax
    import jax.numpy as jnp
    n = 512 if quick else n
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(jnp.dot)
    f(a, a).block_until_ready()
    best = min(_wall(lambda: f(a, a).block_until_ready()) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _wall(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
