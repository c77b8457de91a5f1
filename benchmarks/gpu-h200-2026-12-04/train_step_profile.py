"""Where a ResNet train step spends its device time, jaxeq against PyTorch channels_last.

The bench's train step (``jaxeq.bench.model_steps``: SGD with momentum, batch statistics
updated, float32; 112 px, batch 32 unless given) for each padding: the median step time of
both frameworks (REPEATS steps each, alternating), then one profiled window of 5 steps each:
jaxeq's device kernels from a ``jax.profiler`` perfetto trace (``engine_breakdown.profiled``)
and PyTorch's CUDA kernels from ``torch.profiler``, each as kernels per step, summed kernel
time per step and the longest kernels by name: which kernels make jaxeq's full-padding step
cost more, relative to its same-padding step, than PyTorch's (BENCHMARKS.md, "Second lease").
Runs on any backend (on a CPU the device-kernel lists are empty):

    python benchmarks/gpu-h200-2026-12-04/train_step_profile.py OUT.json [MODEL] [SIZE] [BATCH]
"""
from __future__ import annotations

import collections
import copy
import json
import os
import sys

import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_breakdown import profiled  # noqa: E402

from jaxeq.bench import GPU_FULL_FLOAT32, _configure_torch, harness  # noqa: E402
from jaxeq.bench.model_steps import (LR, _torch_inputs, make_train_step, setup,  # noqa: E402
                                     torch_train_step)

REPEATS = 10
CALLS = 5


def torch_kernels(torch, run, calls=CALLS) -> dict:
    """CUDA kernels per step, their summed time per step and the longest by name."""
    from torch.profiler import ProfilerActivity, profile
    run()
    activities = [ProfilerActivity.CUDA] if torch.cuda.is_available() else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        for _ in range(calls):
            run()
    by_name: dict[str, float] = collections.defaultdict(float)
    count = 0
    for e in prof.events():
        if torch.cuda.is_available() and e.device_type.name != "CUDA":
            continue
        by_name[e.name] += e.device_time if torch.cuda.is_available() else e.cpu_time
        count += 1
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[:15]
    return {"events_per_call": round(count / calls, 1),
            "device_ms_per_call": round(sum(by_name.values()) / calls / 1e3, 3),
            "top_us_per_call": [(n[:90], round(t / calls, 1)) for n, t in top]}


def cell(name, padding, size, batch, device, trace_dir):
    torch = harness.import_torch()
    model, variables, net, xn, yn = setup(name, padding, batch, size, device)
    tx = optax.sgd(LR, momentum=0.9)
    state = {"s": (variables["params"], variables["batch_stats"], tx.init(variables["params"]))}
    jstep = jax.jit(make_train_step(model, tx), donate_argnums=0)
    x, y = jax.device_put(xn), jax.device_put(yn)

    def run_jax():
        state["s"], loss = jstep(state["s"], x, y)
        loss.block_until_ready()

    inputs, ty = _torch_inputs(torch, xn, yn, device)
    tx_in, fmt = inputs["eager-channels_last"]
    tnet = copy.deepcopy(net).to(memory_format=fmt).train()
    tstep = torch_train_step(torch, tnet, torch.optim.SGD(tnet.parameters(), lr=LR,
                                                          momentum=0.9))

    def run_torch():
        tstep(tx_in, ty)
        harness.sync_torch(device)

    times = harness.time_alternating({"jaxeq": run_jax, "torch": run_torch}, repeats=REPEATS)
    res = {"model": name, "padding": padding, "size": size, "batch": batch,
           **{f"{k}_ms": round(float(np.median(v)) * 1e3, 3) for k, v in times.items()}}
    res["speedup_vs_torch_channels_last"] = round(res["torch_ms"] / res["jaxeq_ms"], 3)
    try:
        res["profile_jaxeq"] = profiled(run_jax, os.path.join(trace_dir, f"{name}_{padding}"),
                                        calls=CALLS)
    except Exception as err:  # a backend without a profiler: keep the timings
        res["profile_jaxeq"] = f"failed: {type(err).__name__}: {err}"[:300]
    try:
        res["profile_torch"] = torch_kernels(torch, run_torch)
    except Exception as err:
        res["profile_torch"] = f"failed: {type(err).__name__}: {err}"[:300]
    return res


def main(out_path, name="resnet18", size=112, batch=32, trace_dir="/tmp/train_prof"):
    device = "gpu" if jax.default_backend() == "gpu" else "cpu"
    if device == "gpu":  # as `jaxeq bench --device gpu`: full float32 on both sides
        jax.config.update("jax_default_matmul_precision", GPU_FULL_FLOAT32)
    _configure_torch(device)  # no TF32 on a GPU; as many threads as XLA on a CPU
    res = {"backend": jax.default_backend(), "jax": jax.__version__,
           "devices": [str(d) for d in jax.devices()], "repeats": REPEATS, "cells": []}
    for padding in ("same", "full"):
        res["cells"].append(cell(name, padding, int(size), int(batch), device, trace_dir))
        print(json.dumps(res["cells"][-1])[:2000], flush=True)
        with open(out_path, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
