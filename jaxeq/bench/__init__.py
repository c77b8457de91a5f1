"""Timing of jaxeq against its PyTorch counterpart in the same run (``jaxeq bench``, see
:mod:`jaxeq.cli.bench`).

Every row runs jaxeq and the baseline alternately (median, min and max of ``repeats`` rounds
after warm-up) and checks that their outputs agree before timing (:mod:`jaxeq.bench.harness`).
Each group of rows lives in its own module (:data:`GROUPS`). XLA flags and thread settings are
chosen here, by measurement (see BENCHMARKS.md), and set in the environment before JAX starts
its backend; ``import jaxeq`` never touches them. A flag already present in the user's
``XLA_FLAGS`` wins over ours.
"""
from __future__ import annotations

import os
import shlex
import sys
import time

from jaxeq.cli import xla_env

# group name (``jaxeq bench GROUP``) -> module of jaxeq.bench with its ``rows(**ctx)``
GROUPS = {
    "conv": "conv_modes",         # one conv per padding mode and fill, forward and backward
    "models": "model_steps",      # whole-model forward passes and train steps
    "probe": "invariance_sweep",  # measuring shift invariance over a grid of shifts
    "train": "train_scaling",     # the train step on 1 and 2 devices and in bfloat16
    "data": "input_pipeline",     # host JPEG decode and augmentation throughput
    "lie": "lie_derivative",      # the Lie derivative: one linearisation vs finite differences
    "shifts": "shift_metrics",    # worst-case grids and fractional shifts vs loops
}

# The CLI's measured CPU flags (jaxeq/cli/xla_env.py: YNNPACK fusion off) plus a second CPU device
# for the `train` group's 1 vs 2 devices rows; one-device programs still use one device.
CPU_XLA_FLAGS = xla_env.CPU_XLA_FLAGS + ("--xla_force_host_platform_device_count=2",)


# On a GPU both frameworks run float32 convolutions and matmuls in full float32 unless --tf32:
# their defaults there differ (PyTorch's cuDNN convolutions use TF32, its matmuls do not), TF32
# rounds operands to 10 mantissa bits, and the rows' agreement checks are set for float32.
GPU_FULL_FLOAT32 = "highest"


def configure_environment(device: str, xla_flags: str | None = None, *,
                          tf32: bool = False) -> dict:
    """Set XLA flags, platform, threads and (on a GPU) the float32 precision before JAX starts
    its backend; returns what was set. A default matmul precision the user set (e.g. with
    ``JAX_DEFAULT_MATMUL_PRECISION``) wins.

    Raises RuntimeError if a JAX backend is already running (the flags would be ignored).
    """
    if xla_env.backend_started():
        raise RuntimeError("jaxeq bench must set XLA_FLAGS before JAX initialises its backend; "
                           "a backend is already running in this process")
    ours = CPU_XLA_FLAGS if device == "cpu" else ()
    if xla_flags is not None:
        ours = tuple(xla_flags.split())
    os.environ["XLA_FLAGS"] = xla_env.merge_flags(os.environ.get("XLA_FLAGS", ""), ours)
    os.environ["JAX_PLATFORMS"] = "cpu" if device == "cpu" else "cuda"
    env = {"XLA_FLAGS": os.environ["XLA_FLAGS"], "JAX_PLATFORMS": os.environ["JAX_PLATFORMS"]}
    import jax  # jaxeq already imported it, so its environment variable is read; set the config
    if device == "gpu" and not tf32 and jax.config.jax_default_matmul_precision is None:
        jax.config.update("jax_default_matmul_precision", GPU_FULL_FLOAT32)
    if jax.config.jax_default_matmul_precision is not None:
        env["jax_default_matmul_precision"] = jax.config.jax_default_matmul_precision
    return env


def _configure_torch(device: str, tf32: bool = False) -> None:
    try:
        import torch
    except ImportError:
        return
    if device == "gpu" and not torch.cuda.is_available():
        raise ValueError("--device gpu needs a CUDA device, and PyTorch finds none "
                         "(torch.cuda.is_available() is False); use --device cpu")
    if device == "gpu":
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
    if device == "cpu":
        # Same core count for both frameworks: XLA:CPU uses every usable core.
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(int(n or 1))


def run(groups: list[str], *, repeats: int, warmup: int, device: str, quick: bool,
        only: str | None = None, tf32: bool = False, log=print) -> list[dict]:
    """Run the named groups (environment already configured) and return all rows. ``log``
    gets each finished row (a dict) as it comes, and progress lines (strings)."""
    import importlib
    from jaxeq import _checks
    from jaxeq.bench import harness
    for g in groups:
        _checks.choice("group", g, tuple(GROUPS))
    _configure_torch(device, tf32)
    machine = harness.machine_info()
    command = "jaxeq bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "bench" else "jaxeq bench"

    def log_row(msg):
        if isinstance(msg, dict):  # a finished row: the machine now, its end load added later
            msg["machine"] = machine
        log(msg)

    ctx = dict(repeats=repeats, warmup=warmup, device=device, quick=quick, only=only,
               command=command, log=log_row)
    rows: list[dict] = []
    for g in groups:
        t0 = time.perf_counter()
        mod = importlib.import_module(f"jaxeq.bench.{GROUPS[g]}")
        got = mod.rows(**ctx)
        log(f"[{g}] {len(got)} rows in {time.perf_counter() - t0:.0f} s")
        rows.extend(got)
    machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()] \
        if hasattr(os, "getloadavg") else None
    for r in rows:
        r["machine"] = machine
    return rows


def format_row(r: dict) -> str:
    if r.get("skipped"):
        return f"{r['row']:<52} {r['torch_variant']:<22} SKIPPED: {r['skipped']}"
    if r.get("jaxeq_median_s") is None:
        return f"{r['row']:<52} {r['extra']}"
    return (f"{r['row']:<52} {r['torch_variant']:<22} jaxeq {r['jaxeq_median_s'] * 1e3:9.1f} ms"
            f"  base {r['torch_median_s'] * 1e3:9.1f} ms  speedup {r['speedup']:5.2f}"
            f"  agree={r['agree']}")
