"""``jaxeq bench conv``: one 3x3 conv (batch 32, 56x56, 64->64, float32) for every padding and
fill, forward and forward+backward (gradients w.r.t. input and kernel), against PyTorch NCHW and
channels_last (``padding=`` for zeros, ``F.pad(mode=...)`` for the other fills)."""
from __future__ import annotations

import numpy as np

from jaxeq.bench import harness

MODES = [("valid", "zeros")] + [(p, f) for p in ("same", "full")
                                for f in ("zeros", "circular", "reflect", "replicate")]
_TORCH_MODE = {"circular": "circular", "reflect": "reflect", "replicate": "replicate"}


def _torch_conv(torch, pairs, fill):
    import torch.nn.functional as F
    (lo, hi), (lo2, hi2) = pairs
    if fill == "zeros" and lo == hi and lo2 == hi2:
        return lambda x, w: F.conv2d(x, w, padding=(lo, lo2))
    mode = "constant" if fill == "zeros" else _TORCH_MODE[fill]
    return lambda x, w: F.conv2d(F.pad(x, (lo2, hi2, lo, hi), mode=mode), w)


def _torch_variants(torch, xn, wn, gn, device) -> dict:
    """Input, kernel and output cotangent as torch tensors, per memory layout."""
    dev = harness.torch_device(device)
    variants = {}
    for name, fmt in (("eager-NCHW", torch.contiguous_format),
                      ("eager-channels_last", torch.channels_last)):
        tx = torch.from_numpy(xn).permute(0, 3, 1, 2).to(dev).contiguous(memory_format=fmt)
        tw = torch.from_numpy(wn).permute(3, 2, 0, 1).to(dev).contiguous(memory_format=fmt)
        tg = torch.from_numpy(gn).permute(0, 3, 1, 2).to(dev).contiguous(memory_format=fmt)
        variants[name] = (tx, tw, tg)
    return variants


def _torch_fns(torch, tconv, device):
    """(forward, forward+backward) of ``tconv``, each taking (x, w, cotangent) and synchronised."""
    def torch_fwd(tx, tw, tg):
        with torch.no_grad():
            y = tconv(tx, tw)
        harness.sync_torch(device)
        return y

    def torch_bwd(tx, tw, tg):
        tx = tx.detach().requires_grad_(True)
        tw = tw.detach().requires_grad_(True)
        tconv(tx, tw).backward(tg)
        harness.sync_torch(device)
        return tx.grad, tw.grad

    return torch_fwd, torch_bwd


def rows(*, repeats, warmup, device, quick, only, command, log, **_) -> list[dict]:
    import jax
    import jaxeq as jq
    torch = harness.import_torch()
    b, n, c = (2, 12, 8) if quick else (32, 56, 64)
    size = f"{n}/b{b}/float32"
    rng = np.random.default_rng(0)
    xn = rng.standard_normal((b, n, n, c)).astype(np.float32)
    wn = (rng.standard_normal((3, 3, c, c)) / np.sqrt(9 * c)).astype(np.float32)
    x, w = jax.device_put(xn), jax.device_put(wn)
    out = []
    for padding, fill in MODES:
        pairs = jq.padding_pairs(padding, (3, 3))
        m = (n + pairs[0][0] + pairs[0][1]) - 2
        gn = rng.standard_normal((b, m, m, c)).astype(np.float32)
        g = jax.device_put(gn)

        def f(x, w, padding=padding, fill=fill):
            return jq.conv(x, w, padding=padding, fill=fill)

        fwd = jax.jit(f)
        bwd = jax.jit(lambda x, w, g, f=f: jax.vjp(f, x, w)[1](g))
        for kind in ("fwd", "fwdbwd"):
            row = f"conv/{kind}/{padding}/{fill}/{size}"
            if not harness.wanted(row, only):
                continue
            if torch is None:
                out.append(harness.skipped_row(row, "conv", harness.NO_TORCH, command=command))
                continue
            variants = _torch_variants(torch, xn, wn, gn, device)
            torch_fwd, torch_bwd = _torch_fns(torch, _torch_conv(torch, pairs, fill), device)
            if kind == "fwd":
                def jfn():
                    return fwd(x, w).block_until_ready()
                tfn = torch_fwd

                def outputs():
                    refs = {v: torch_fwd(*a).permute(0, 2, 3, 1) for v, a in variants.items()}
                    return fwd(x, w), refs
            else:
                def jfn():
                    return jax.block_until_ready(bwd(x, w, g))
                tfn = torch_bwd

                def outputs():
                    refs = {}
                    for v, a in variants.items():
                        dx, dw = torch_bwd(*a)
                        refs[v] = (dx.permute(0, 2, 3, 1), dw.permute(2, 3, 1, 0))
                    return bwd(x, w, g), refs
            baselines = {v: (lambda a=a, tfn=tfn: tfn(*a)) for v, a in variants.items()}
            flops = 2 * b * m * m * 9 * c * c * (1 if kind == "fwd" else 3)
            got = harness.compare(row, "conv", jfn, baselines, outputs=outputs,
                                  check=harness.Check(rtol=1e-4), repeats=repeats,
                                  warmup=warmup, command=command,
                                  extra={"flops": flops, "padding": padding, "fill": fill,
                                         "kind": kind})
            for r in got:
                log(r)
            out.extend(got)
    return out
