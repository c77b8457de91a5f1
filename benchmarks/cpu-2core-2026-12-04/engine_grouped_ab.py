"""Layer table of ResNet-18 (96 px, 64 roll shifts): the engine comparing each output on its
own (``engine.GROUP_ALIKE`` False, the default) against comparing outputs alike in shape,
dtype and stride stacked together (True), and, given its file, the engine of an earlier commit
(its per-output loop, to check the default lost nothing). Same process, alternating
(``harness.time_alternating``), the compiled programs alone with the same arguments; also the
ops in each compiled program's entry computation (on a GPU every fusion is a kernel launch)
and the largest relative difference between the tables' statistics. Any backend:

    git show cede433:jaxeq/analysis/engine.py > /tmp/engine_cede433.py
    python benchmarks/cpu-2core-2026-12-04/engine_grouped_ab.py same|full [/tmp/engine_cede433.py]
"""
from __future__ import annotations

import collections
import importlib.util
import re
import sys

import jax.numpy as jnp
import numpy as np

from jaxeq.analysis import engine, layerwise
from jaxeq.bench import harness
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup

REPEATS = 7


def entry_ops(plan) -> collections.Counter:
    hlo = plan.program.lower(*plan.args).compile().as_text()
    return collections.Counter(re.findall(r"= \S+ (\w[\w-]*)\(", hlo[hlo.index("ENTRY"):]))


def main(padding, earlier_engine=None):
    model, variables, _, xn, _ = setup("resnet18", padding, 1, 96, "cpu")
    x, shifts = jnp.asarray(xn), _shifts(64)
    _, specs, _, layout = layerwise._module_features(model, variables, x, None)
    g = layerwise._flax_apply(model, None)

    def plan(module, group):
        module.GROUP_ALIKE = group
        return module._plan(("with_aux", g, variables), x, shifts, specs, "roll", 1, None, False,
                            per_image=layout.bytes_per_image)

    plans = {"each_output": plan(engine, False), "alike_together": plan(engine, True)}
    engine.GROUP_ALIKE = False
    if earlier_engine:
        spec = importlib.util.spec_from_file_location("earlier_engine", earlier_engine)
        earlier = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(earlier)
        plans["earlier_commit"] = earlier._plan(("with_aux", g, variables), x, shifts, specs,
                                                "roll", 1, None, False,
                                                per_image=layout.bytes_per_image)
    stats = {name: p.program(*p.args)[0] for name, p in plans.items()}
    base = stats["each_output"]
    print(f"{padding}: {len(specs)} outputs")
    for name, st in stats.items():
        assert all(np.array_equal(np.isnan(base[k]), np.isnan(st[k])) for k in engine.STAT_KEYS)
        diff = max(float(np.nanmax(np.abs(st[k] - base[k]) / np.maximum(np.abs(base[k]), 1e-30)))
                   for k in engine.STAT_KEYS)
        ops = entry_ops(plans[name])
        print(f"  {name}: {sum(ops.values())} ops, {ops['fusion']} fusions, {ops['copy']} copies;"
              f" largest relative difference from each_output {diff:.3g}")
    times = harness.time_alternating({n: (lambda p=p: p.program(*p.args))
                                      for n, p in plans.items()}, repeats=REPEATS)
    for n, t in times.items():
        print(f"  {n}: median {np.median(t) * 1e3:.1f} ms (min {min(t) * 1e3:.1f}, "
              f"max {max(t) * 1e3:.1f})")


if __name__ == "__main__":
    main(*sys.argv[1:])
