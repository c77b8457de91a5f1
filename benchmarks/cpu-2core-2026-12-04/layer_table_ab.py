"""Shared by the engine statistics A/Bs (``engine_rowreduce_ab.py``, ``engine_refenergy_ab.py``):
ResNet-18 at 96 px, one image, 64 roll shifts, eval mode, ``jq.layerwise_equivariance`` with
``engine._compare`` (or the engine function ``attr`` names) set to each variant in turn; per call a compile, then one warm call timed;
variants alternate, 5 rounds after a warm-up, medians; prints the times and the largest relative
difference between the variants' tables."""
import time

import jax
import numpy as np

import jaxeq as jq
from jaxeq.analysis import engine
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup


def run(padding: str, variants: dict, attr: str = "_compare") -> None:
    model, variables, _, xn, _ = setup("resnet18", padding, 1, 96, "cpu")
    x, js = jax.device_put(xn), jax.device_put(_shifts(64))
    times = {k: [] for k in variants}
    tables = {}

    def call(name):
        setattr(engine, attr, variants[name])
        engine._features_program.cache_clear()
        rows = jq.layerwise_equivariance(model, variables, x, js, action="roll")  # compile
        t0 = time.perf_counter()
        rows = jq.layerwise_equivariance(model, variables, x, js, action="roll")
        return time.perf_counter() - t0, rows

    for name in variants:
        _, tables[name] = call(name)
    for _ in range(5):
        for name in variants:
            t, _ = call(name)
            times[name].append(t)
    for name, ts in times.items():
        print(f"{padding} {name}: median {np.median(ts) * 1e3:.0f} ms "
              f"(rounds {', '.join(f'{t * 1e3:.0f}' for t in ts)})")
    worst = 0.0
    for a, b in zip(*tables.values()):
        for key in ("mean", "max", "interior", "border"):
            va, vb = a[key], b[key]
            if np.isnan(va) and np.isnan(vb):
                continue
            worst = max(worst, abs(va - vb) / max(abs(va), 1e-30))
    print(f"largest relative difference between the two tables: {worst:.2e}")
