"""``jaxeq bench shifts``: the cost of the microscope's shift metrics on a ResNet-18 (eval mode,
1000 classes, BatchNorm statistics randomised as in the model rows) against the obvious
alternatives, same and full padding.

- ``worst_case`` rows: :func:`jaxeq.worst_case_shifts` over a whole grid of roll shifts (31x31
  in the full run, Michaeli et al.'s evaluation) in one call, against
  ``jax-loop-of-jitted-calls`` (one jitted shift + forward per shift, metrics in NumPy) and
  ``torch-eager-loop-channels_last`` (the same loop in PyTorch). All sides return the
  worst-case consistency, the consistency, MAC, the per-image flip fractions and the per-shift
  flip map (the unshifted predictions as labels); they are compared before timing.
- ``fractional`` rows: :func:`jaxeq.invariance_error` with ``action="fractional"`` (band-limited
  sub-pixel shifts, 64 shifts on a half-pixel grid) against ``jax-batched-forward`` (the
  shifted copies made before timing and run as one batch) and ``jax-fair-loop`` (one jitted
  shift + forward + error per shift).

Run: ``jaxeq bench shifts [--quick] [--json out.json]`` (``--quick``: one small cell each).
"""
from __future__ import annotations

import numpy as np

from jaxeq.bench import harness

PADDINGS = ("same", "full")


def reference_metrics(clean_logits: np.ndarray, shifted_logits: np.ndarray) -> list[np.ndarray]:
    """The worst-case metrics from logits, in float64 NumPy: ``[[worst-case consistency,
    consistency, MAC], flip fraction per image (N,), flip map per shift (S,)]`` for unshifted
    logits ``(N, K)`` and shifted logits ``(S, N, K)``, the unshifted top-1 classes as labels."""
    clean = np.asarray(clean_logits, np.float64)
    shifted = np.asarray(shifted_logits, np.float64)
    cls = clean.argmax(-1)                                   # (N,)
    same = shifted.argmax(-1) == cls[None]                   # (S, N)

    def prob(logits):  # softmax probability of the unshifted top-1 class
        z = np.exp(logits - logits.max(-1, keepdims=True))
        return np.take_along_axis(z / z.sum(-1, keepdims=True), cls[:, None], -1)[..., 0]

    mac = np.mean(np.abs(np.stack([prob(s) for s in shifted]) - prob(clean)[None]))
    scalars = np.array([np.mean(same.all(0)), np.mean(same), mac])
    return [scalars, 1.0 - same.mean(0), 1.0 - same.mean(1)]


def _metrics_of(result) -> list[np.ndarray]:
    return [np.array([result.worst_case_accuracy, result.consistency, result.mac]),
            np.asarray(result.flip_fraction, np.float64), np.asarray(result.flip_map, np.float64)]


def _grid(max_shift: int) -> np.ndarray:
    import jaxeq as jq
    return np.asarray(jq.shift_grid(max_shift))


def worst_case_rows(padding, size, batch, max_shift, *, device, repeats, warmup, command):
    import jax

    import jaxeq as jq
    from jaxeq.bench.model_steps import setup
    from jaxeq.bench.invariance_sweep import _torch_shift

    torch = harness.import_torch()
    model, variables, net, xn, _ = setup("resnet18", padding, batch, size, device)
    shifts = _grid(max_shift)
    x = jax.device_put(xn)
    apply = jax.jit(lambda p, v: model.apply(p, v, train=False))
    shifted_apply = jax.jit(lambda p, v, s: model.apply(p, jq.roll(v, s), train=False))

    def engine_call():
        return _metrics_of(jq.worst_case_shifts(apply, x, shifts, params=variables,
                                                action="roll"))

    def jax_loop():
        outs = [shifted_apply(variables, x, s) for s in jax.device_put(shifts)]
        return reference_metrics(apply(variables, x), np.stack([np.asarray(o) for o in outs]))

    baselines = {"jax-loop-of-jitted-calls": jax_loop}
    if torch is not None:
        dev = harness.torch_device(device)
        tnet = net.eval().to(memory_format=torch.channels_last)
        tx = torch.from_numpy(xn).permute(0, 3, 1, 2).to(dev)

        def torch_loop():
            with torch.no_grad():
                clean = tnet(tx.contiguous(memory_format=torch.channels_last))
                outs = [tnet(_torch_shift(torch, tx, int(a), int(b), "roll").contiguous(
                    memory_format=torch.channels_last)) for a, b in shifts]
            harness.sync_torch(device)
            return reference_metrics(clean.cpu().numpy(),
                                     np.stack([o.cpu().numpy() for o in outs]))
        baselines["torch-eager-loop-channels_last"] = torch_loop

    k = 2 * max_shift + 1
    row = f"shifts/resnet18/{padding}/worst_case/roll/{k}x{k}/{size}/n{batch}/float32"
    # the flip fractions count class changes: a near-tie decided differently by float32
    # rounding moves one entry by 1/S (per image) or 1/N (per shift), hence the loose leaves
    check = harness.Check(leaf_rtols=(1e-3, 5e-2, 5e-2), atol=1e-5)
    return harness.compare(row, "shifts", engine_call, baselines,
                           outputs=lambda: (engine_call(), {k: f() for k, f in baselines.items()}),
                           check=check, repeats=repeats, warmup=warmup, command=command,
                           extra={"shifts": len(shifts), "images": batch, "size": size,
                                  "padding": padding,
                                  "jaxeq_side": "jq.worst_case_shifts (warm, one call)"})


def _fractional_grid(per_axis: int, step: float) -> np.ndarray:
    """``per_axis**2`` real shifts ``step * (i - per_axis // 2)`` on each axis."""
    r = step * (np.arange(per_axis) - per_axis // 2)
    return np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)


def fractional_rows(padding, size, per_axis, *, device, repeats, warmup, command):
    import jax
    import jax.numpy as jnp

    import jaxeq as jq
    from jaxeq.bench.model_steps import setup

    model, variables, _, xn, _ = setup("resnet18", padding, 1, size, device)
    x = jax.device_put(xn)
    shifts = jax.device_put(_fractional_grid(per_axis, 0.5))
    f = jax.jit(lambda v: model.apply(variables, v, train=False))
    xs = jax.jit(jax.vmap(lambda s: jq.fractional_shift(x, s)[0]))(shifts)

    def rel(y, base):
        axes = tuple(range(1, y.ndim))
        return jnp.sqrt(jnp.sum(jnp.square(y - base), axes)) / jnp.linalg.norm(base)

    batched_prog = jax.jit(lambda xs, x: rel(f(xs), f(x)))
    loop_step = jax.jit(lambda x, s, base: rel(f(jq.fractional_shift(x, s)), base)[0])
    base = f(x)

    def engine_call():
        return np.asarray(jq.invariance_error(f, x, shifts, action="fractional"))

    def batched():
        return np.asarray(batched_prog(xs, x))

    def fair_loop():
        return np.asarray(jnp.stack([loop_step(x, s, base) for s in shifts]))

    baselines = {"jax-batched-forward": batched, "jax-fair-loop": fair_loop}
    row = f"shifts/resnet18/{padding}/invariance/fractional/S{len(shifts)}/{size}/float32"
    return harness.compare(row, "shifts", engine_call, baselines,
                           outputs=lambda: (engine_call(), {k: g() for k, g in baselines.items()}),
                           check=harness.Check(rtol=1e-3, atol=1e-5), repeats=repeats,
                           warmup=warmup, command=command,
                           extra={"shifts": int(len(shifts)), "step_px": 0.5, "size": size,
                                  "padding": padding,
                                  "jaxeq_side": "jq.invariance_error(action='fractional') (warm)"})


def rows(*, repeats, warmup, device, quick, only, command, log, **_) -> list[dict]:
    """Worst case: 31x31 roll grid, 4 images of 64 px (quick: 5x5, one of 32 px); fractional:
    8x8 half-pixel shifts of one 64 px image (quick: 4x4 at 32 px); same and full (quick:
    same)."""
    paddings = ("same",) if quick else PADDINGS
    wc = dict(size=32, batch=1, max_shift=2) if quick else dict(size=64, batch=4, max_shift=15)
    fr = dict(size=32, per_axis=4) if quick else dict(size=64, per_axis=8)
    kw = dict(device=device, repeats=repeats, warmup=max(warmup, 1), command=command)
    out = []
    for padding in paddings:
        k = 2 * wc["max_shift"] + 1
        row = f"shifts/resnet18/{padding}/worst_case/roll/{k}x{k}/{wc['size']}/n{wc['batch']}"
        if harness.wanted(row, only):
            out += harness.logged(log, harness.rows_or_error(
                row, "shifts", lambda p=padding: worst_case_rows(p, **wc, **kw), command=command))
        row = f"shifts/resnet18/{padding}/invariance/fractional/S{fr['per_axis'] ** 2}"
        if harness.wanted(row, only):
            out += harness.logged(log, harness.rows_or_error(
                row, "shifts", lambda p=padding: fractional_rows(p, **fr, **kw), command=command))
    return out
