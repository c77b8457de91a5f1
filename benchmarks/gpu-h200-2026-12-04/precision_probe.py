"""What float32 rounding mode does to the shift analysis on a GPU (TF32 vs full float32).

ResNet-18 (eval, the bench's random weights and BN statistics), one 64x64 image, 16 shifts
(the probe bench's grid), translate then roll, same and full padding. For JAX's default GPU
precision and for "highest": the engine's errors with batching auto and batch, whether "auto"
fell back to vmap (its batch-independence check failed: auto then differs from batch), the
unshifted copy's deviation inside the batch, and the median time of the engine call; PyTorch's
errors with TF32 on and off. Differences are taken against JAX "highest" with batching batch.
The JSON is rewritten after every cell. Run on the device machine:

    python benchmarks/gpu-h200-2026-12-04/precision_probe.py OUT.json
"""
from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import torch

import jaxeq as jq
from jaxeq.bench import harness
from jaxeq.bench.invariance_sweep import _shifts, _torch_batched
from jaxeq.bench.model_steps import setup

DEVICE = "gpu" if torch.cuda.is_available() else "cpu"


def jax_side(model, variables, x, js, action, precision):
    with jax.default_matmul_precision(precision):
        f = jax.jit(lambda v: model.apply(variables, v, train=False))
        got = {b: np.asarray(jq.invariance_error(f, x, js, action=action, batching=b))
               for b in ("auto", "batch")}
        act = jq.roll if action == "roll" else jq.translate
        xs = jax.vmap(lambda s: act(x, s)[0])(js)
        alone, inside = f(x), f(jnp.concatenate([x, xs]))[:1]
        copy_dev = float(jnp.max(jnp.abs(inside - alone)) / jnp.max(jnp.abs(alone)))
        t = harness.median_s(lambda: jq.invariance_error(f, x, js, action=action))
    return {"errors": {k: v.tolist() for k, v in got.items()},
            "auto_fell_back_to_vmap": bool(not np.array_equal(got["auto"], got["batch"])),
            "unshifted_copy_in_batch_max_rel_dev": copy_dev, "engine_median_s": t}


def main(out_path):
    res = {"device": DEVICE, "jax": jax.__version__, "torch": torch.__version__,
           "jax_devices": [str(d) for d in jax.devices()], "cells": []}
    for padding in ("same", "full"):
        model, variables, net, xn, _ = setup("resnet18", padding, 1, 64, DEVICE)
        x, shifts = jax.device_put(xn), _shifts(16)
        js = jax.device_put(shifts)
        for action in ("translate", "roll"):
            cell = {"padding": padding, "action": action}
            for prec in ("default", "highest"):
                cell[f"jax_{prec}"] = jax_side(model, variables, x, js, action, prec)
            for tf32 in (True, False):
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                run = _torch_batched(torch, net, xn, shifts, action, DEVICE)
                cell[f"torch_tf32_{tf32}"] = {"errors": run().tolist(),
                                              "median_s": harness.median_s(run)}
            ref = np.asarray(cell["jax_highest"]["errors"]["batch"])
            cell["max_abs_diff_vs_jax_highest_batch"] = {
                name: float(np.max(np.abs(np.asarray(v) - ref)))
                for name, v in [("jax_default_auto", cell["jax_default"]["errors"]["auto"]),
                                ("torch_tf32", cell["torch_tf32_True"]["errors"]),
                                ("torch_fp32", cell["torch_tf32_False"]["errors"])]}
            cell["max_error"] = float(ref.max())
            res["cells"].append(cell)
            print(padding, action, "max err", round(cell["max_error"], 4),
                  {k: f"{v:.1e}" for k, v in cell["max_abs_diff_vs_jax_highest_batch"].items()},
                  "fell back:", cell["jax_default"]["auto_fell_back_to_vmap"],
                  cell["jax_highest"]["auto_fell_back_to_vmap"],
                  "engine s:", round(cell["jax_default"]["engine_median_s"], 4),
                  round(cell["jax_highest"]["engine_median_s"], 4), flush=True)
            with open(out_path, "w") as f:
                json.dump(res, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
