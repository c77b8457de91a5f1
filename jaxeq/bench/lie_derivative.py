"""The Lie derivative of translation of a ResNet-18 classifier: one forward-mode pass
(``jax.linearize`` of the net, its tangent map vmapped over the x and y axes: what
:func:`jaxeq.lie_derivative` runs) against central finite differences of fractional shifts
(two forward passes per axis through :func:`jaxeq.fractional_shift`, what
:func:`jaxeq.lie_derivative_fd` runs), both jitted, on the same images.

Both sides return the derivative of the logits along each axis, ``(2, N, classes)``; they are
compared before timing (``max_rel_diff``: ``max |jvp - fd| / max |jvp|``, the finite
difference's O(h^2) truncation plus float32 rounding / h) and timed alternately by
:mod:`jaxeq.bench.harness`. ``speedup`` in a row is the finite difference's median time over
the jvp's.

Run: ``jaxeq bench lie [--quick] [--json out.json]`` (``--quick``: one small cell).
"""
from __future__ import annotations

import numpy as np

from jaxeq.bench import harness

def _sides(model, variables, x, h: float):
    """(jvp call, finite-difference call) returning ``(2, N, classes)`` numpy arrays, both
    through the public functions (each compiles once per ``f``; ``f`` is jitted so that their
    shape checks do not retrace the net)."""
    import jax

    import jaxeq as jq

    f = jax.jit(lambda v: model.apply(variables, v, train=False))

    def by_jvp():
        return jq.lie_derivative(f, x, return_map=True).maps

    def by_fd():
        return jq.lie_derivative_fd(f, x, h=h)

    return by_jvp, by_fd


def smooth_images(key, batch: int, size: int, max_freq: int):
    """``(batch, size, size, 3)`` float32 noise keeping only the DFT bins with
    ``|k| <= max_freq`` on both axes (band-limited, no Nyquist content), unit std."""
    import jax
    import jax.numpy as jnp

    noise = jax.random.normal(key, (batch, size, size, 3), jnp.float32)
    k = np.abs(np.fft.fftfreq(size, 1.0 / size))
    keep = jnp.asarray((k[:, None] <= max_freq) & (k[None, :] <= max_freq), jnp.float32)
    spec = jnp.fft.fft2(noise, axes=(1, 2)) * keep[None, :, :, None]
    x = jnp.real(jnp.fft.ifft2(spec, axes=(1, 2)))
    return (x / jnp.std(x)).astype(jnp.float32)


def run(*, size: int = 64, batch: int = 4, paddings: tuple = (("same", "zeros"),
        ("same", "circular")), h: float = 1e-3, other_h: tuple = (1e-2, 1e-4),
        repeats: int = 5, warmup: int = 1, seed: int = 0, command: str = "") -> list[dict]:
    """One row per (padding, fill) of a ResNet-18 (1000 classes, eval mode, random init) at
    ``size`` px on ``batch`` band-limited random images (:func:`smooth_images`, ``|k| <=
    size / 8``): the jvp Lie derivative vs the finite difference with step ``h`` (timed;
    its agreement is the row's ``max_rel_diff``). ``extra`` holds the mean |dlogit/dt| over
    images, classes and axes, and the agreement at the steps ``other_h`` (not timed): ReLU and
    max-pool kinks make the finite difference converge only about linearly in ``h``, float32
    rounding limits small ``h``."""
    import jax

    import jaxeq as jq
    from jaxeq import models

    found = []
    x = smooth_images(jax.random.key(seed), batch, size, size // 8)
    for padding, fill in paddings:
        model = models.get("resnet18", padding=padding, fill=fill)
        variables = jax.jit(model.init)(jax.random.key(seed), x[:1])
        by_jvp, by_fd = _sides(model, variables, x, h)
        ours = by_jvp()
        f = jax.jit(lambda v, m=model, p=variables: m.apply(p, v, train=False))
        at_h = {str(s): harness.max_rel_diff(jq.lie_derivative_fd(f, x, h=s), ours)
                for s in other_h}
        found += harness.compare(
            f"resnet18-{padding}-{fill}-{size}px-n{batch}", "lie_derivative", by_jvp,
            {"finite-difference-fractional": by_fd},
            outputs=lambda: (ours, {"finite-difference-fractional": by_fd()}),
            check=harness.Check(rtol=5e-2), repeats=repeats, warmup=warmup, command=command,
            extra={"h": h, "mean_abs_lie": float(np.mean(np.abs(ours))),
                   "max_rel_diff_at_h": at_h,
                   "forward_passes": {"jvp": "1 linearized (2 tangents)", "fd": 4}})
    return found


def rows(*, repeats, warmup, quick, only, command, log, **_) -> list[dict]:
    """``jaxeq bench lie``: ResNet-18 same-zeros and same-circular at 64 px, batch 4 (quick:
    same-zeros at 32 px, batch 1)."""
    if quick:
        kw = dict(size=32, batch=1, paddings=(("same", "zeros"),))
    else:
        kw = dict(size=64, batch=4)
    out = [r for r in run(repeats=repeats, warmup=max(warmup, 1), command=command, **kw)
           if harness.wanted(r["row"], only)]
    for r in out:
        log(r)
    return out
