"""``jaxeq bench probe``: the cost of measuring shift invariance of a ResNet-18 (eval mode) on a
64x64 image for S = 64 circular shifts: one vmapped ``jq.invariance_error`` pass against a
Python loop of jitted calls (one per shift), a PyTorch eager loop and a PyTorch batched pass.

Every variant computes the same (S,) relative errors ``||f(roll(x, s)) - f(x)|| / ||f(x)||``,
compared before timing. ``extra`` reports the XLA memory analysis of the vmapped program
(arguments + outputs + temporaries, i.e. its peak working set) beside one loop call's.
"""
from __future__ import annotations

import numpy as np

from jaxeq.bench import harness


def _shifts(quick):
    r = np.arange(-2, 2) if quick else np.arange(-4, 4)  # 16 or 64 shifts
    return np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2).astype(np.int32)


def _mem(compiled) -> int | None:
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


def _torch_baselines(torch, net, xn, shifts, device) -> dict:
    """The same (S,) errors from PyTorch channels_last: a loop over shifts, and one batch."""
    dev = harness.torch_device(device)
    tnet = net.eval().to(memory_format=torch.channels_last)
    tx = torch.from_numpy(xn).permute(0, 3, 1, 2).to(dev).contiguous(
        memory_format=torch.channels_last)

    def torch_loop():
        with torch.no_grad():
            base = tnet(tx).double()
            errs = [torch.linalg.norm(tnet(torch.roll(tx, (int(a), int(b)), (2, 3))).double()
                                      - base) / torch.linalg.norm(base) for a, b in shifts]
        harness.sync_torch(device)
        return np.array([float(e) for e in errs])

    def torch_batched():
        with torch.no_grad():
            base = tnet(tx).double()
            batch = torch.cat([torch.roll(tx, (int(a), int(b)), (2, 3)) for a, b in shifts])
            y = tnet(batch.contiguous(memory_format=torch.channels_last)).double()
            errs = torch.linalg.norm(y - base, dim=1) / torch.linalg.norm(base)
        harness.sync_torch(device)
        return errs.cpu().numpy()

    return {"torch-eager-loop-channels_last": torch_loop,
            "torch-eager-batched-channels_last": torch_batched}


def rows(*, repeats, warmup, device, quick, only, command, log, **_) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import jaxeq as jq
    size = 32 if quick else 64
    shifts = _shifts(quick)
    s = len(shifts)
    row = f"probe/resnet18/invariance/roll/S{s}/{size}/float32"
    if not harness.wanted(row, only):
        return []
    from jaxeq.bench.model_steps import setup
    torch = harness.import_torch()
    model, variables, net, xn, _ = setup("resnet18", "same", 1, size, device)
    x = jax.device_put(xn)
    f = jax.jit(lambda v: model.apply(variables, v, train=False))
    js = jax.device_put(shifts)

    def vmapped():
        return np.asarray(jq.invariance_error(f, x, js, action="roll"))

    # The loop a user would write: one jitted call per shift, errors on the host.
    ref = f(x)

    def loop():
        base = np.asarray(ref, np.float64)
        out = []
        for sh in shifts:
            y = np.asarray(f(jq.roll(x, tuple(int(v) for v in sh))), np.float64)
            out.append(np.linalg.norm(y - base) / np.linalg.norm(base))
        return np.array(out)

    baselines = {"jax-loop-of-jitted-calls": loop}
    if torch is not None:
        baselines.update(_torch_baselines(torch, net, xn, shifts, device))
    outs = dict(baselines)
    # Memory: the vmapped forward of S images vs one call of the loop.
    vm = jax.jit(jax.vmap(lambda sh: f(jq.roll(x, sh)))).lower(js).compile()
    one = f.lower(x).compile()
    extra = {"shifts": s, "size": size, "peak_bytes_vmapped": _mem(vm),
             "peak_bytes_one_loop_call": _mem(one),
             "note": "peak bytes = XLA memory_analysis (arguments + outputs + temporaries)"}
    # The same vmapped pass compiled once: the measurement itself, without tracing and
    # compiling (which jq.invariance_error's end-to-end row includes).
    @jax.jit
    def program(x, shifts):
        base = f(x)
        ys = jax.vmap(lambda sh: f(jq.roll(x, sh)))(shifts)
        axes = tuple(range(1, ys.ndim))
        return jnp.sqrt(jnp.sum(jnp.square(ys - base), axes)) / jnp.linalg.norm(base)

    def compiled():
        return np.asarray(program(x, js))

    check = harness.Check(rtol=1e-3, atol=1e-5)
    got = harness.compare(row + "/api", "probe", vmapped,
                          {"jax-loop-of-jitted-calls": loop},
                          outputs=lambda: (vmapped(), {"jax-loop-of-jitted-calls": loop()}),
                          check=check, repeats=repeats, warmup=warmup, command=command,
                          extra=dict(extra, jaxeq_side="jq.invariance_error (end to end)"))
    got += harness.compare(row + "/compiled", "probe", compiled, baselines,
                           outputs=lambda: (compiled(), {k: fn() for k, fn in outs.items()}),
                           check=check, repeats=repeats, warmup=warmup, command=command,
                           extra=dict(extra, jaxeq_side="vmapped program, compiled once"))
    for r in got:
        log(r)
    return got
