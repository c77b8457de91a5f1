"""``jaxeq bench train``: ResNet-18 (same) train step at 112x112, batch 32, on 1 and 2 CPU
devices (the batch sharded over a ``data`` mesh, parameters replicated, BatchNorm over the
global batch) and in bfloat16 (compute; float32 parameters), beside PyTorch eager
channels_last (bfloat16 through ``torch.autocast``) in the same run.

The 2-device row needs ``--xla_force_host_platform_device_count=2`` (set by ``jaxeq bench`` on
CPU); both devices share the same cores, so on CPU it measures the cost of the sharded program,
not extra hardware.
"""
from __future__ import annotations

from functools import partial

from jaxeq.bench import harness


def rows(*, repeats, warmup, device, quick, only, command, log, **_) -> list[dict]:
    import jax
    from jaxeq.bench.model_steps import train_rows
    batch, size = (4, 64) if quick else (32, 112)
    torch = harness.import_torch()
    plan = [("float32", 1), ("float32", 2), ("bfloat16", 1)]
    out, peak = [], None
    for dtype, ndev in plan:
        row = f"train/resnet18/train/same/{size}/b{batch}/{dtype}/{ndev}dev"
        if not harness.wanted(row, only):
            continue
        if torch is None:
            got = [harness.skipped_row(row, "train", harness.NO_TORCH, command=command)]
        elif len(jax.devices()) < ndev:
            got = [harness.skipped_row(
                row, "train", f"needs {ndev} JAX devices, have {len(jax.devices())} (on CPU "
                "set XLA_FLAGS=--xla_force_host_platform_device_count=2)", command=command)]
        else:
            if peak is None:
                peak = harness.matmul_peak_gflops(quick=quick)
            got = harness.rows_or_error(row, "train", partial(
                train_rows, "resnet18", "same", batch=batch, size=size, repeats=repeats,
                warmup=warmup, device=device, command=command, peak=peak, dtype=dtype,
                row_prefix="train", jax_devices=ndev, variants=["eager-channels_last"]),
                command=command)
        for r in got:
            log(r)
        out.extend(got)
    return out
