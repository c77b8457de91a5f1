"""The engine's working-set estimate per image against what XLA needs per added image.

For each model (the bench's ResNets, eval mode, random weights, one image): the engine's
estimate for an invariance measurement (``engine._bytes_per_image`` of the logits) and for a
layer table (``engine.aux_layout(...).bytes_per_image``, every intermediate an output), and
XLA's own per-image cost of the same forward: the slope of its memory analysis (temporaries +
outputs) between batch B and 2B (the intercept is printed too: 0 means nothing fixed). The
estimate sets the engine's chunk size, so it should stay above XLA's cost without the 15-44x
of the bound it replaced.

    python benchmarks/cpu-2core-2026-12-04/working_set_estimate.py OUT.json
"""
from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp

from jaxeq.analysis import engine
from jaxeq.analysis.layerwise import _flax_apply
from jaxeq.bench.model_steps import setup

CELLS = [("resnet18", "same", 64, 16), ("resnet18", "full", 64, 16), ("resnet18", "same", 128, 16),
         ("resnet18", "full", 224, 4), ("resnet50", "same", 224, 4), ("resnet50", "full", 224, 4)]


def xla_per_image(fn, x, batch):
    """(bytes per added image, bytes at batch 0) of XLA's temporaries + outputs for ``fn``."""
    sizes = []
    for b in (batch, 2 * batch):
        m = jax.jit(fn).lower(jnp.zeros((b,) + x.shape[1:], x.dtype)).compile().memory_analysis()
        sizes.append(m.temp_size_in_bytes + m.output_size_in_bytes)
    slope = (sizes[1] - sizes[0]) / batch
    return slope, sizes[0] - batch * slope


def main(out_path):
    res = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(),
           "backend": jax.default_backend(), "peak_margin": engine.PEAK_MARGIN, "cells": []}
    for name, padding, size, batch in CELLS:
        model, variables, _, xn, _ = setup(name, padding, 1, size, "cpu")
        x = jnp.asarray(xn)
        table = _flax_apply(model, None)

        def forward(v):
            return model.apply(variables, v, train=False)

        estimate = engine._bytes_per_image(lambda v: {"y": forward(v)}, x)
        table_estimate = engine.aux_layout(table, variables, x).bytes_per_image
        xla, fixed = xla_per_image(forward, x, batch)
        xla_table, fixed_table = xla_per_image(lambda v: table(variables, v), x, batch)
        cell = {"model": name, "padding": padding, "size": size,
                "invariance_estimate_mb": round(estimate / 1e6, 2),
                "invariance_xla_mb": round(xla / 1e6, 2), "invariance_xla_fixed_mb": round(fixed / 1e6, 2),
                "invariance_ratio": round(estimate / xla, 2),
                "table_estimate_mb": round(table_estimate / 1e6, 2),
                "table_xla_mb": round(xla_table / 1e6, 2),
                "table_xla_fixed_mb": round(fixed_table / 1e6, 2),
                "table_ratio": round(table_estimate / xla_table, 2)}
        res["cells"].append(cell)
        print(json.dumps(cell), flush=True)
    with open(out_path, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
