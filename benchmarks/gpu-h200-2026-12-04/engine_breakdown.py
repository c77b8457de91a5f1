"""Where a warm ``jq.invariance_error`` call spends its time, against the bench's batched forward.

ResNet-18 (eval, the probe bench's random weights), one image, the probe bench's shift grids,
roll. For each cell, medians over REPEATS calls of:

- ``engine_call``: ``jq.invariance_error(f, x, shifts)`` as a user calls it (the bench's row);
- ``engine_program``: the engine's compiled program alone (the same one the call runs), with
  its results on the host (since the one-copy change: its single transfer; before: blocked,
  results left on the device);
- ``engine_dispatch``: the same program's calls issued back to back, per call (before the
  one-copy change the call returned device arrays without waiting; since, it returns host
  arrays and measures what ``engine_program`` does);
- ``batched``: the bench's ``jax-batched-forward`` (S copies made beforehand + the reference);
- ``batched_plus_one``: the same with S + 1 copies (the engine's batch holds an unshifted copy).

Then one profiled window per program (``jax.profiler`` perfetto trace): device kernels per call,
their summed time, and the longest kernels by name. Writes OUT.json after every cell. Runs on
any backend (the GPU is what it is for):

    python benchmarks/gpu-h200-2026-12-04/engine_breakdown.py OUT.json [PROFILE_DIR]
"""
from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxeq as jq
from jaxeq.analysis import engine
from jaxeq.bench import harness
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup

REPEATS = 20
# padding:size:shifts,... (env BREAKDOWN_CELLS overrides)
CELLS = [(p, int(a), int(b)) for p, a, b in (c.split(":") for c in os.environ.get(
    "BREAKDOWN_CELLS", "same:64:16,same:64:64,full:64:16,same:128:64").split(","))]


def device_kernels(trace_dir: str, calls: int) -> dict:
    """Kernel count and summed kernel time per call from the newest perfetto trace under
    ``trace_dir`` (events of processes whose name is a device, not the host)."""
    path = sorted(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"),
                            recursive=True), key=os.path.getmtime)[-1]
    data = json.load(gzip.open(path))
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {e["pid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    device_pids = {p for p, n in names.items() if "/device:" in n}
    kernels = [e for e in events if e.get("ph") == "X" and e.get("pid") in device_pids]
    by_name = collections.defaultdict(float)
    for e in kernels:
        by_name[e["name"]] += float(e.get("dur", 0.0))
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[:15]
    return {"device_processes": sorted(names[p] for p in device_pids),
            "events_per_call": round(len(kernels) / calls, 1),
            "device_ms_per_call": round(sum(by_name.values()) / calls / 1e3, 3),
            "top_us_per_call": [(n[:90], round(t / calls, 1)) for n, t in top]}


def profiled(fn, trace_dir, calls=5):
    fn()
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        for _ in range(calls):
            fn()
    return device_kernels(trace_dir, calls)


def cell(padding, size, n_shifts, device, profile_dir):
    model, variables, _, xn, _ = setup("resnet18", padding, 1, size, device)
    x = jax.device_put(xn)
    js = jax.device_put(_shifts(n_shifts))
    f = jax.jit(lambda v: model.apply(variables, v, train=False))

    def rel(y, base):
        axes = tuple(range(1, y.ndim))
        return jnp.sqrt(jnp.sum(jnp.square(y - base), axes)) / jnp.linalg.norm(base)

    xs = jax.jit(jax.vmap(lambda s: jq.roll(x, s)[0]))(js)
    xs1 = jnp.concatenate([x, xs])
    batched_prog = jax.jit(lambda xs, x: rel(f(xs), f(x)))

    per_image = engine._per_image_bytes(("single", f), x)
    chunk = max(1, engine.default_memory_budget() // per_image)
    prog = engine._single_output_program(f, "invariant", "roll", None, chunk, False, True,
                                         False)  # the grid holds the zero shift: no check copy

    def engine_call():
        return np.asarray(jq.invariance_error(f, x, js, action="roll"))

    def engine_program():
        jax.block_until_ready(prog(x, js, None))

    def engine_dispatch():
        return prog(x, js, None)

    def batched():
        return np.asarray(batched_prog(xs, x))

    def batched_plus_one():
        return np.asarray(batched_prog(xs1, x))

    got, want = engine_call(), batched()
    res = {"padding": padding, "size": size, "shifts": n_shifts, "chunk": int(chunk),
           "max_abs_diff_engine_vs_batched": float(np.max(np.abs(got - want)))}
    for name, fn in [("engine_call", engine_call), ("engine_program", engine_program),
                     ("batched", batched), ("batched_plus_one", batched_plus_one)]:
        res[name + "_ms"] = round(harness.median_s(fn, repeats=REPEATS) * 1e3, 3)
    outs = []
    t0 = time.perf_counter()
    for _ in range(REPEATS):
        outs.append(engine_dispatch())
    res["engine_dispatch_ms"] = round((time.perf_counter() - t0) / REPEATS * 1e3, 3)
    jax.block_until_ready(outs)
    if profile_dir:
        tag = f"{padding}_{size}_S{n_shifts}"
        for name, fn in [("engine_program", engine_program), ("batched", batched)]:
            try:
                res["profile_" + name] = profiled(fn, os.path.join(profile_dir, tag, name))
            except Exception as err:  # a backend without a profiler: keep the timings
                res["profile_" + name] = f"failed: {type(err).__name__}: {err}"[:300]
    return res


def main(out_path, profile_dir=None):
    device = "gpu" if jax.default_backend() == "gpu" else "cpu"
    res = {"backend": jax.default_backend(), "jax": jax.__version__,
           "devices": [str(d) for d in jax.devices()], "repeats": REPEATS,
           "precision": str(jax.config.jax_default_matmul_precision), "cells": []}
    if device == "gpu":  # as `jaxeq bench --device gpu`: full float32 on both sides
        jax.config.update("jax_default_matmul_precision", "highest")
        res["precision"] = "highest"
    for padding, size, n in CELLS:
        t0 = time.perf_counter()
        res["cells"].append(cell(padding, size, n, device, profile_dir))
        res["cells"][-1]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(res["cells"][-1])[:1500], flush=True)
        with open(out_path, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
