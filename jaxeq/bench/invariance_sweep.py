"""``jaxeq bench probe``: the cost of measuring shift invariance of a ResNet-18 (eval mode, 1000
classes, one image) over a grid of S shifts, for same and full padding, roll and translate.

Every row times the engine as a user calls it (``jq.invariance_error(f, x, shifts, action=...)``,
after one warm-up call) against:

- ``jax-batched-forward``: jaxeq's own forward of the same S shifted copies as ONE batch, plus
  the reference pass and the errors, jitted (the copies are made before timing). The engine
  should cost at most 1.1x this: it is the same computation with the shifting inside.
- ``jax-fair-loop``: one jitted function that shifts, applies and measures, called once per
  shift (compiled once; dispatched asynchronously, gathered at the end).
- ``torch-batched-channels_last``: PyTorch eager channels_last running the same shifted batch.

All sides compute the same (S,) relative errors ``||f(g x) - f(x)|| / ||f(x)||``, compared
before timing. ``extra`` holds the engine's chunking (chunks, rows per chunk and its working-set
estimate, from the default budget: :func:`jaxeq.analysis.engine.default_memory_budget`) and the XLA
memory analysis of the engine's program and of the one-batch forward (peak bytes).
``--quick`` runs one small cell; the full grid is 64 / 96 / 128 px x 16 / 64 / 256 shifts plus
``layerwise_equivariance`` rows at 96 px, 64 shifts.
"""
from __future__ import annotations

import itertools

import numpy as np

from jaxeq.bench import harness

PADDINGS = ("same", "full")
ACTIONS = ("roll", "translate")
SIZES = (64, 96, 128)
N_SHIFTS = (16, 64, 256)


def _shifts(n: int) -> np.ndarray:
    """``n`` (a square) shifts on the grid [-k/2, k/2)^2, k = sqrt(n)."""
    k = int(round(n ** 0.5))
    r = np.arange(-(k // 2), k - k // 2)
    return np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2).astype(np.int32)


def _mem(compiled) -> int | None:
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


def _torch_shift(torch, tx, a: int, b: int, action: str):
    """NCHW ``tx`` rolled, or translated with zero fill, by (a, b) on (H, W)."""
    if action == "roll":
        return torch.roll(tx, (a, b), (2, 3))
    h, w = tx.shape[2:]
    pad = (max(b, 0), max(-b, 0), max(a, 0), max(-a, 0))  # (W lo, W hi, H lo, H hi)
    big = torch.nn.functional.pad(tx, pad)
    top, left = max(-a, 0), max(-b, 0)
    return big[:, :, top:top + h, left:left + w]


def _torch_batched(torch, net, xn, shifts, action, device):
    dev = harness.torch_device(device)
    tnet = net.eval().to(memory_format=torch.channels_last)
    tx = torch.from_numpy(xn).permute(0, 3, 1, 2).to(dev)
    batch = torch.cat([_torch_shift(torch, tx, int(a), int(b), action) for a, b in shifts])
    batch = batch.contiguous(memory_format=torch.channels_last)
    tx = tx.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.no_grad():
            base = tnet(tx).double()
            y = tnet(batch).double()
            errs = torch.linalg.norm(y - base, dim=1) / torch.linalg.norm(base)
        harness.sync_torch(device)
        return errs.cpu().numpy()
    return run


def _jax_sides(model, variables, x, shifts, action):
    """(engine call, batched-forward call, fair-loop call, extra) on one image ``x``."""
    import jax
    import jax.numpy as jnp
    import jaxeq as jq

    f = jax.jit(lambda v: model.apply(variables, v, train=False))
    act = jq.roll if action == "roll" else jq.translate
    js = jax.device_put(shifts)
    xs = jax.jit(jax.vmap(lambda s: act(x, s)[0]))(js)  # (S, H, W, C), made before timing

    def rel(y, base):
        axes = tuple(range(1, y.ndim))
        return jnp.sqrt(jnp.sum(jnp.square(y - base), axes)) / jnp.linalg.norm(base)

    batched_prog = jax.jit(lambda xs, x: rel(f(xs), f(x)))
    loop_step = jax.jit(lambda x, s, base: rel(f(act(x, s)), base)[0])
    base = f(x)

    def engine_call():
        return np.asarray(jq.invariance_error(f, x, js, action=action))

    def batched():
        return np.asarray(batched_prog(xs, x))

    def fair_loop():
        return np.asarray(jnp.stack([loop_step(x, s, base) for s in js]))

    return engine_call, batched, fair_loop, _memory(f, x, js, xs, action, batched_prog)


def _memory(f, x, js, xs, action, batched_prog) -> dict:
    """The engine's chunking (as its default memory budget sets it) and the peak memory of its
    compiled program and of the batched forward."""
    from jaxeq.analysis import engine
    plan = engine._plan(("single", f), x, js, {"y": "invariant"}, action, None, None, False)
    rows = len(js) + int(plan.check_copy)
    n_chunks, per_chunk = engine._chunking(rows, plan.chunk)
    return {"engine_chunks": n_chunks, "engine_rows_per_chunk": per_chunk,
            "engine_working_set_estimate_bytes": int(engine._per_image_bytes(("single", f), x)
                                                  * per_chunk),
            "engine_peak_bytes": _mem(plan.program.lower(*plan.args).compile()),
            "batched_forward_peak_bytes": _mem(batched_prog.lower(xs, x).compile()),
            "note": "peak bytes = XLA memory_analysis (arguments + outputs + temporaries); "
                    "the working-set estimate is the engine's own for one chunk (twice the "
                    "in-order peak of its jaxpr's values, plus outputs and input copies), "
                    "which sets the chunk size"}


def invariance_rows(padding, size, n_shifts, action, *, device, repeats, warmup, command):
    from jaxeq.bench.model_steps import setup
    torch = harness.import_torch()
    model, variables, net, xn, _ = setup("resnet18", padding, 1, size, device)
    shifts = _shifts(n_shifts)
    import jax
    engine_call, batched, fair_loop, extra = _jax_sides(model, variables, jax.device_put(xn),
                                                        shifts, action)
    baselines = {"jax-batched-forward": batched, "jax-fair-loop": fair_loop}
    if torch is not None:
        baselines["torch-batched-channels_last"] = _torch_batched(torch, net, xn, shifts,
                                                                  action, device)
    row = f"probe/resnet18/{padding}/invariance/{action}/S{len(shifts)}/{size}/float32"
    extra.update(shifts=len(shifts), size=size, padding=padding, action=action,
                 jaxeq_side="jq.invariance_error (warm)")
    return harness.compare(row, "probe", engine_call, baselines,
                           outputs=lambda: (engine_call(), {k: f() for k, f in baselines.items()}),
                           check=harness.Check(rtol=1e-3, atol=1e-5), repeats=repeats,
                           warmup=warmup, command=command, extra=extra)


def layerwise_rows(padding, size, n_shifts, *, device, repeats, warmup, command):
    """``layerwise_equivariance`` against the batched forward of the shifted copies that also
    returns every intermediate (what the table needs computed, without the comparisons)."""
    import jax
    import jaxeq as jq
    from jaxeq.bench.model_steps import setup
    model, variables, _, xn, _ = setup("resnet18", padding, 1, size, device)
    x, js = jax.device_put(xn), jax.device_put(_shifts(n_shifts))
    xs = jax.jit(jax.vmap(lambda s: jq.roll(x, s)[0]))(js)
    fwd = jax.jit(lambda v: model.apply(variables, v, train=False,
                                        capture_intermediates=True))

    def layerwise():
        return jq.layerwise_equivariance(model, variables, x, js, action="roll")

    def batched():
        jax.block_until_ready((fwd(x), fwd(xs)))
    row = f"probe/resnet18/{padding}/layerwise/roll/S{len(js)}/{size}/float32"
    return harness.compare(row, "probe", layerwise, {"jax-batched-forward-intermediates": batched},
                           repeats=repeats, warmup=warmup, command=command,
                           extra={"shifts": len(js), "size": size, "padding": padding,
                                  "jaxeq_side": "jq.layerwise_equivariance (warm)"})


def rows(*, repeats, warmup, device, quick, only, command, log, **_) -> list[dict]:
    # The two layer tables first, then the grid from its cheapest cell up with both paddings and
    # actions side by side: a run cut short (a time limit, a lease) keeps comparable rows.
    grid = [("same", 32, 16, "roll")] if quick else [
        (p, size, n, a) for size, n, p, a in itertools.product(SIZES, N_SHIFTS, PADDINGS, ACTIONS)]
    layer_cells = [] if quick else [(p, 96, 64) for p in PADDINGS]
    out = []
    kw = dict(device=device, repeats=repeats, warmup=max(warmup, 1), command=command)
    for padding, size, n in layer_cells:
        row = f"probe/resnet18/{padding}/layerwise/roll/S{n}/{size}/float32"
        if harness.wanted(row, only):
            out += harness.logged(log, harness.rows_or_error(row, "probe", lambda: layerwise_rows(
                padding, size, n, **kw), command=command))
    for padding, size, n, action in grid:
        row = f"probe/resnet18/{padding}/invariance/{action}/S{n}/{size}/float32"
        if harness.wanted(row, only):
            out += harness.logged(log, harness.rows_or_error(row, "probe", lambda: invariance_rows(
                padding, size, n, action, **kw), command=command))
    return out
