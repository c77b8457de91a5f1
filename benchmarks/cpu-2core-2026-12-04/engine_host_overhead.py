"""Host time of a warm analysis call: the call as a user makes it against the compiled program
it runs, called alone with the same arguments (captured from the call itself, so the script
runs unchanged on older checkouts of the engine), and the call with that program answering at
once with its own results: the host's work around the program, without the device's noise.
The program's own host part (unpacking its results) is timed on its own; the host-only calls
run back to back (4 x REPEATS), as they would beside a GPU, whose work leaves the host's caches
alone (alternated with a CPU program they read slower).

Cells: ``invariance_error`` of a one-conv function on an 8x8 image (device work negligible:
the difference is the host's), of ResNet-18 (eval, same padding, 32 px) and the layer table of
that ResNet-18; 16 roll shifts (the probe bench's grid, which holds the zero shift), given as a
numpy array and as a jax array. Medians of REPEATS alternating rounds (``harness``).

    python benchmarks/cpu-2core-2026-12-04/engine_host_overhead.py OUT.json [REPEATS]
"""
from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxeq as jq
from jaxeq.analysis import engine
from jaxeq.bench import harness
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup


# the engine's cached program factories (hashable functions and models: the cells here)
_FACTORIES = ("_single_output_program", "_features_program")


def _patched(make_run, call):
    """Run ``call()`` with the engine's cached program factories wrapped: each program ``prog``
    they return is replaced by ``make_run(prog)`` (the caches keep the real programs: ``call``
    has run before, unpatched)."""
    originals = {name: getattr(engine, name) for name in _FACTORIES}
    try:
        for name, make in originals.items():
            setattr(engine, name, lambda *a, _make=make, **k: make_run(_make(*a, **k)))
        return call()
    finally:
        for name, make in originals.items():
            setattr(engine, name, make)


def captured_program(call):
    """(program, args, output) of the engine's first compiled-program call inside ``call()``."""
    seen = []

    def recording(prog):
        def run(*args):
            out = prog(*args)
            if not seen:
                seen.append((prog, args, out))
            return out
        return run

    _patched(recording, call)
    return seen[0]


def cell(name, call, repeats):
    call()  # compiled and cached before any patching
    program, args, output = captured_program(call)

    def host_only():  # the call with its program answering at once with its own results
        return _patched(lambda prog: lambda *a: output, call)

    times = harness.time_alternating({"call": call, "program": lambda: program(*args)},
                                     repeats=repeats, warmup=3)
    med = {k: float(np.median(v)) * 1e6 for k, v in times.items()}
    # back to back: on a GPU the device's work leaves the host's caches as they were
    host = harness.median_s(host_only, repeats=4 * repeats, warmup=10) * 1e6
    unpack = _unpack_us(program, args, repeats)
    return {"cell": name, "call_us": round(med["call"], 1), "program_us": round(med["program"], 1),
            "call_minus_program_us": round(med["call"] - med["program"], 1),
            "host_outside_program_us": round(host, 1),
            "program_host_us": None if unpack is None else round(unpack, 1),
            "repeats": repeats}


def _unpack_us(program, args, repeats):
    """The program's own host work (one_copy: the call that brings its results over and splits
    them), timed with its compiled function answering at once with its packed result."""
    cells = dict(zip(program.__code__.co_freevars, program.__closure__ or ()))
    if "compiled" not in cells:  # not a one_copy program
        return None
    compiled = cells["compiled"].cell_contents
    packed = compiled(*args)
    cells["compiled"].cell_contents = lambda *a: packed
    try:
        return harness.median_s(lambda: program(*args), repeats=4 * repeats, warmup=10) * 1e6
    finally:
        cells["compiled"].cell_contents = compiled


def main(out_path, repeats=200):
    w = jnp.full((3, 3, 4, 4), 0.1, jnp.float32)

    def tiny(v):
        return jnp.tanh(jq.conv(v, w, padding="same")).mean(axis=(1, 2))

    x_tiny = jnp.asarray(np.random.default_rng(0).random((1, 8, 8, 4), np.float32))
    model, variables, _, xn, _ = setup("resnet18", "same", 1, 32, "cpu")
    x = jax.device_put(xn)
    f = jax.jit(lambda v: model.apply(variables, v, train=False))
    host = _shifts(16)
    res = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(), "cells": []}
    for kind, shifts in (("numpy", host), ("jax", jax.device_put(host))):
        cells = [
            (f"invariance/tiny_conv/8px/S16/{kind}",
             lambda s=shifts: jq.invariance_error(tiny, x_tiny, s), repeats),
            (f"invariance/resnet18/same/32px/S16/{kind}",
             lambda s=shifts: jq.invariance_error(f, x, s), max(20, repeats // 4)),
            (f"layerwise/resnet18/same/32px/S16/{kind}",
             lambda s=shifts: jq.layerwise_equivariance(model, variables, x, s),
             max(20, repeats // 4)),
        ]
        for name, call, n in cells:
            res["cells"].append(cell(name, call, n))
            print(json.dumps(res["cells"][-1]), flush=True)
    with open(out_path, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
