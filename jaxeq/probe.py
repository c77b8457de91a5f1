"""``jaxeq probe``: layer-by-layer equivariance of a model (or toy net) per padding, side by side.

Example::

    jaxeq probe --model resnet18 --variants same:zeros full:zeros same:circular \\
        --size 64 --max-shift 8 --action translate --out probe_out

prints one rich table (a column group per padding/fill variant) and writes into ``--out``:
``error_vs_depth.png`` (max error per layer, one line per variant), ``error_map.png``
(per-pixel error maps of a few layers per variant) and ``probe.json`` (all rows).

The input is seeded random content: for ``--action translate`` it sits on a zero canvas with a
zero margin of ``--margin`` pixels (default max-shift + 4, so translations lose nothing), for
``roll`` it fills the image. ``--bn-shift S`` adds N(0, S^2) to every BatchNorm bias and running mean, the way
training makes them non-zero, to show where zero padding then re-creates a border.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import textwrap
from functools import partial
from typing import Any

import numpy as np

# Toy jq.chain nets available before (and besides) the model registry: name -> builder.
TOY_NETS = ("toy_cnn", "toy_strided")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="toy_cnn",
                        help=f"a registry model (jaxeq.models.names()) or a toy chain net "
                             f"{TOY_NETS} (default toy_cnn)")
    parser.add_argument("--padding", nargs="+", default=["same", "full"],
                        choices=["valid", "same", "full"], help="paddings to compare")
    parser.add_argument("--fill", nargs="+", default=["zeros"],
                        choices=["zeros", "circular", "reflect", "replicate"],
                        help="fills to compare (every padding x fill pair is probed)")
    parser.add_argument("--variants", nargs="+", metavar="PADDING:FILL",
                        help="explicit variants, e.g. same:zeros full:zeros same:circular "
                             "(overrides --padding/--fill)")
    parser.add_argument("--size", type=int, default=64, help="input height = width")
    parser.add_argument("--frames", type=int, default=16,
                        help="input length T of 3-D (video) models such as resnet3d_18; their "
                             "shift grid is 3-D, (2*max-shift/step + 1)^3 shifts")
    parser.add_argument("--batch", type=int, default=1, help="images per shift")
    parser.add_argument("--max-shift", type=int, default=8, help="shifts in [-m, m]^2")
    parser.add_argument("--step", type=int, default=1, help="shift grid step")
    parser.add_argument("--action", default="translate", choices=["roll", "translate"])
    parser.add_argument("--margin", type=int, default=None,
                        help="zero margin of the translate input (default max-shift + 4: a "
                             "valid stride-2 pool can drop the last row of an odd map, so "
                             "content must stay a few pixels off the edge)")
    parser.add_argument("--border", type=int, default=1,
                        help="border width in each layer's own pixels (interior vs border)")
    parser.add_argument("--bn-shift", type=float, default=0.0,
                        help="std of noise added to BatchNorm biases and running means")
    parser.add_argument("--chunk", type=int, default=16,
                        help="shifts per vmapped chunk (memory); 0 = all at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--questions", action="store_true",
                        help="print the 'which layers are equivariant, to which shifts?' table "
                             "(single ops and small nets) instead of a model's layer table")
    parser.add_argument("--out", default="probe_out", help="folder for the PNGs and JSON")


def _variants(args) -> list[tuple[str, str]]:
    if args.variants:
        out = []
        for v in args.variants:
            padding, _, fill = v.partition(":")
            if padding not in ("valid", "same", "full") or fill not in (
                    "zeros", "circular", "reflect", "replicate"):
                raise ValueError(f"--variants entries must be PADDING:FILL with padding in "
                                 f"(valid, same, full) and fill in (zeros, circular, reflect, "
                                 f"replicate), got {v!r}")
            out.append((padding, fill))
        return out
    return [(p, f) for p in args.padding for f in args.fill]


def toy_net(name: str, padding: str, fill: str, channels: int, seed: int = 0):
    """A small ``jq.chain`` net with seeded He-normal kernels (strides declared via partial)."""
    import jax
    import jax.numpy as jnp

    import jaxeq as jq

    rng = np.random.default_rng(seed)

    def w(k, cin, cout):
        return jnp.asarray(rng.normal(size=(k, k, cin, cout)) * math.sqrt(2 / (k * k * cin)),
                           jnp.float32)

    conv = partial(jq.conv, padding=padding, fill=fill)
    if name == "toy_cnn":
        return jq.chain(partial(conv, kernel=w(3, channels, 8)), jax.nn.relu,
                        partial(conv, kernel=w(3, 8, 8)), jax.nn.relu,
                        partial(conv, kernel=w(3, 8, 8)), jax.nn.relu,
                        partial(conv, kernel=w(3, 8, 8)), jax.nn.relu, jq.global_max_pool)
    if name == "toy_strided":
        return jq.chain(partial(conv, kernel=w(3, channels, 8)), jax.nn.relu,
                        partial(conv, kernel=w(3, 8, 16), stride=2), jax.nn.relu,
                        partial(conv, kernel=w(3, 16, 16), stride=2), jax.nn.relu,
                        jq.global_avg_pool)
    raise ValueError(f"toy net must be one of {TOY_NETS}, got {name!r}")


def perturb_batchnorm(variables: Any, std: float, seed: int = 0) -> Any:
    """Add N(0, std^2) to every BatchNorm bias (a ``bias`` next to a ``scale``) and running
    ``mean``: the non-zero shifts that training produces."""
    import jax

    rng = np.random.default_rng(seed)

    def walk(tree, bn_like):
        if not hasattr(tree, "items"):
            return tree
        is_bn = "scale" in tree and "bias" in tree
        out = {}
        for k, v in tree.items():
            if hasattr(v, "items"):
                out[k] = walk(v, bn_like)
            elif (k == "bias" and is_bn) or (k == "mean" and bn_like):
                out[k] = v + jax.numpy.asarray(rng.normal(size=v.shape) * std, v.dtype)
            else:
                out[k] = v
        return out

    return {col: walk(tree, col == "batch_stats") for col, tree in variables.items()}


def probe_input(size, channels: int, batch: int, action: str, margin: int,
                seed: int) -> np.ndarray:
    """Seeded random inputs; for ``translate`` on a zero canvas with a zero margin.

    ``size``: an int (square image) or a tuple of spatial sizes (e.g. (T, H, W) for video).
    """
    spatial = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    rng = np.random.default_rng(seed)
    x = np.zeros((batch, *spatial, channels), np.float32)
    m = margin if action == "translate" else 0
    if 2 * m >= min(spatial):
        raise ValueError(f"input size {spatial} leaves no content inside a zero margin of {m} "
                         f"(--margin); use a larger --size/--frames or a smaller --margin")
    inner = tuple(slice(m, n - m) for n in spatial)
    x[(slice(None), *inner)] = rng.normal(size=(batch, *(n - 2 * m for n in spatial), channels))
    return x


def probe_variant(model_name: str, padding: str, fill: str, x: np.ndarray, shifts: Any, *,
                  action: str, border: int, bn_shift: float, chunk: int | None, seed: int,
                  error_maps: bool = True) -> list[dict]:
    """Layer-by-layer rows for one padding/fill variant of a registry model or toy net."""
    import jax

    from jaxeq.equivariance import layerwise_equivariance

    if model_name in TOY_NETS:
        net = toy_net(model_name, padding, fill, x.shape[-1], seed)
        return layerwise_equivariance(net, None, x, shifts, action=action, border=border,
                                      chunk_size=chunk, error_maps=error_maps)
    from jaxeq import models

    model = models.get(model_name, padding=padding, fill=fill)
    variables = model.init(jax.random.key(seed), x, train=False)
    if bn_shift:
        variables = perturb_batchnorm(variables, bn_shift, seed)
    return layerwise_equivariance(model, variables, x, shifts, action=action, border=border,
                                  chunk_size=chunk, error_maps=error_maps)


def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1e}"


def render_table(results: dict[str, list[dict]], title: str):
    """One rich table: layer and stride, then max / interior / border error per variant."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    table.add_column("layer", no_wrap=True)
    table.add_column("stride", no_wrap=True)
    table.add_column("n", justify="right")
    for name in results:
        table.add_column(f"{name}\nmax", justify="right", no_wrap=True)
        table.add_column("interior", justify="right", no_wrap=True)
        table.add_column("border", justify="right", no_wrap=True)
    order: list[str] = []
    for rows in results.values():
        order += [r["path"] for r in rows if r["path"] not in order]
    by_path = {name: {r["path"]: r for r in rows} for name, rows in results.items()}
    for path in order:
        any_row = next(by_path[n][path] for n in results if path in by_path[n])
        stride = any_row["stride"]
        cells = [path, "inv" if any_row["kind"] == "invariant" else
                 ("?" if stride is None else "x".join(map(str, stride))),
                 str(any_row["n_shifts"])]
        for name in results:
            r = by_path[name].get(path)
            if r is None or r["kind"] == "skipped":
                cells += ["n/a", "", ""]
            elif r["kind"] == "invariant":
                sub = f"{_fmt(r['max_subgroup'])} on {r['n_subgroup']}"
                cells += [_fmt(r["max"]), sub, "(s in stride*Z)"]
            else:
                cells += [_fmt(r["max"]), _fmt(r["interior"]), _fmt(r["border"])]
        table.add_row(*cells)
    return table


def plot_error_vs_depth(results: dict[str, list[dict]], path: str, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    floor = 1e-12
    for name, rows in results.items():
        used = [r for r in rows if r["kind"] != "skipped" and not math.isnan(r["max"])]
        depth = np.arange(len(used))
        ax.semilogy(depth, [max(r["max"], floor) for r in used], marker="o", ms=3,
                    label=f"{name} max")
        ax.semilogy(depth, [max(r["interior"], floor) if not math.isnan(r["interior"])
                            else np.nan for r in used], ls="--", lw=1,
                    label=f"{name} interior")
    ax.set_xlabel("layer output (depth order)")
    ax.set_ylabel(f"relative L2 error (floored at {floor:g})")
    ax.set_title(textwrap.fill(title, 100), fontsize=8)  # long titles wrap, never cut off
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_error_maps(results: dict[str, list[dict]], path: str, title: str,
                    layers: int = 4) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    picks = {}
    for name, rows in results.items():
        with_map = [r for r in rows if r.get("error_map") is not None
                    and r["error_map"].ndim == 2]
        idx = np.unique(np.linspace(0, len(with_map) - 1, min(layers, len(with_map))).round()
                        .astype(int)) if with_map else []
        picks[name] = [with_map[i] for i in idx]
    ncol = max((len(p) for p in picks.values()), default=1) or 1
    fig = Figure(figsize=(3 * ncol, 2.8 * len(picks)))
    FigureCanvasAgg(fig)
    for i, (name, rows) in enumerate(picks.items()):
        for j, r in enumerate(rows):
            ax = fig.add_subplot(len(picks), ncol, i * ncol + j + 1)
            m = r["error_map"]
            top = float(np.nanmax(m)) if np.any(~np.isnan(m)) else 0.0
            im = ax.imshow(m, cmap="magma", vmin=0.0, vmax=max(top, 1e-12))
            ax.set_title(f"{name}\n{r['path']}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# Shift sets of the questions table: (column, action, max shift, subgroup only).
QUESTION_COLUMNS = (("roll s=stride*k |s|<=4", "roll", 4, True),
                    ("roll all |s|<=3", "roll", 3, False),
                    ("roll all |s|<=16", "roll", 16, False),
                    ("translate s=stride*k |s|<=4", "translate", 4, True),
                    ("translate all |s|<=3", "translate", 3, False),
                    ("translate all |s|<=16", "translate", 16, False))


def question_rows(seed: int = 0):
    """(name, fn, kind, stride) for the questions table: single ops (equivariance of the map)
    and small nets ending in global pooling (invariance of the output)."""
    import jax
    import jax.numpy as jnp

    import jaxeq as jq

    rng = np.random.default_rng(seed)

    def w(cin, cout, k=3):
        return jnp.asarray(rng.normal(size=(k, k, cin, cout)) * math.sqrt(2 / (k * k * cin)),
                           jnp.float32)

    w1, w2, w3 = w(3, 8), w(8, 8), w(8, 8)
    c = lambda wt, **kw: partial(jq.conv, kernel=wt, **kw)  # noqa: E731
    rows = [
        ("conv 3x3 same-zeros s1", c(w1), "equi", 1),
        ("conv 3x3 same-circular s1", c(w1, fill="circular"), "equi", 1),
        ("conv 3x3 same-reflect s1", c(w1, fill="reflect"), "equi", 1),
        ("conv 3x3 full-zeros s1", c(w1, padding="full"), "equi", 1),
        ("conv 3x3 valid s1", c(w1, padding="valid"), "equi", 1),
        ("conv 3x3 same-circular s2", c(w1, fill="circular", stride=2), "equi", 2),
        ("conv 3x3 full-zeros s2", c(w1, padding="full", stride=2), "equi", 2),
        ("max_pool 2 s2", partial(jq.max_pool, window=2), "equi", 2),
        ("avg_pool 2 s2", partial(jq.avg_pool, window=2), "equi", 2),
        ("blur_pool 3 s2 circular", partial(jq.blur_pool, fill="circular"), "equi", 2),
    ]

    def net(padding, fill, sub, pool, bias=0.0):
        def sub_fn(v):
            if sub == "max":
                return jq.max_pool(v, 2, fill="neutral" if fill == "zeros" else fill)
            if sub == "aps":
                return jq.aps_pool(v)
            return v
        return jq.chain(c(w1, padding=padding, fill=fill), lambda v: jax.nn.relu(v + bias),
                        sub_fn, c(w2, padding=padding, fill=fill), jax.nn.relu, sub_fn,
                        c(w3, padding=padding, fill=fill), jax.nn.relu, pool)

    gap, gmp = jq.global_avg_pool, jq.global_max_pool
    rows += [
        ("net same-zeros, maxpool s2 x2, GAP", net("same", "zeros", "max", gap), "inv", 4),
        ("net same-circular, maxpool s2 x2, GAP", net("same", "circular", "max", gap), "inv", 4),
        ("net same-circular, APS s2 x2, GAP", net("same", "circular", "aps", gap), "inv", 4),
        ("net same-circular s1, GAP", net("same", "circular", None, gap), "inv", 1),
        ("net same-zeros s1, global max (rook)", net("same", "zeros", None, gmp), "inv", 1),
        ("net full-zeros s1, global max", net("full", "zeros", None, gmp), "inv", 1),
        ("net full-zeros s1 + bias 0.1, global max", net("full", "zeros", None, gmp, 0.1),
         "inv", 1),
    ]
    return rows


def questions_table(size: int = 48, seed: int = 0):
    """Max relative L2 error per op/net (rows) and shift set (columns), measured with
    jq.equivariance_error (single ops) and jq.invariance_error (nets with global pooling)."""
    import jaxeq as jq

    table = []
    for name, fn, kind, stride in question_rows(seed):
        cells = []
        for _, action, m, subgroup in QUESTION_COLUMNS:
            margin = m if action == "translate" else 0
            x = probe_input(size, 3, 2, action, margin, seed)
            shifts = np.asarray(jq.shift_grid(m))
            if subgroup:
                shifts = shifts[np.all(shifts % stride == 0, axis=1)]
            elif kind == "equi" and stride > 1:
                cells.append(None)  # outside the subgroup equivariance is undefined
                continue
            if kind == "equi":
                err = jq.equivariance_error(fn, x, shifts, action=action, out_stride=stride)
            else:
                err = jq.invariance_error(fn, x, shifts, action=action)
            cells.append(float(np.nanmax(err)))
        table.append((name, cells))
    return table


def render_questions(table, size: int):
    from rich.table import Table

    t = Table(title=f"Which layers are equivariant, to which shifts? Max relative L2 error over "
                    f"the shifts ({size}x{size} random input, batch 2; translate: content on a "
                    f"zero canvas with a margin equal to the largest shift, so it reaches the "
                    f"edge but never leaves). Single ops: equivariance error; nets: "
                    f"invariance error of the pooled output; '-': shift outside the subgroup")
    t.add_column("op / net", no_wrap=True)
    for col, *_ in QUESTION_COLUMNS:
        t.add_column(col, justify="right")
    for name, cells in table:
        t.add_row(name, *["-" if v is None else f"{v:.1e}" for v in cells])
    return t


def main(args: argparse.Namespace) -> int:
    import jaxeq as jq
    from rich.console import Console

    if args.questions:
        size = max(args.size, 40)
        Console(width=200).print(render_questions(questions_table(size, args.seed), size))
        return 0

    variants = _variants(args)
    if args.model in TOY_NETS:
        channels = 3
    else:
        from jaxeq import models

        if args.model not in models.names():
            raise ValueError(f"--model must be one of {list(TOY_NETS) + models.names()}, "
                             f"got {args.model!r}")
        channels = models.example_input_shape(args.model)[-1]
    ndim = 2 if args.model in TOY_NETS else len(models.example_input_shape(args.model)) - 2
    spatial = (args.size,) * 2 if ndim == 2 else (args.frames,) + (args.size,) * (ndim - 1)
    margin = args.max_shift + 4 if args.margin is None else args.margin
    x = probe_input(spatial, channels, args.batch, args.action, margin, args.seed)
    shifts = jq.shift_grid(args.max_shift, ndim=ndim, step=args.step)
    chunk = args.chunk or None
    results = {}
    for padding, fill in variants:
        results[f"{padding}-{fill}"] = probe_variant(
            args.model, padding, fill, x, shifts, action=args.action, border=args.border,
            bn_shift=args.bn_shift, chunk=chunk, seed=args.seed)

    title = (f"{args.model}: {args.action} equivariance error per layer (relative L2; "
             f"max over the n shifts in each layer's stride subgroup, interior/border: mean; "
             f"{len(shifts)} shifts in [-{args.max_shift}, {args.max_shift}]^{ndim} step "
             f"{args.step}, {'x'.join(map(str, spatial))}"
             f"{f', zero margin {margin}' if args.action == 'translate' else ''}, "
             f"border {args.border} px"
             f"{f', BN shift {args.bn_shift}' if args.bn_shift else ''})")
    Console(width=max(120, 60 + 48 * len(results))).print(render_table(results, title))

    os.makedirs(args.out, exist_ok=True)
    plot_error_vs_depth(results, os.path.join(args.out, "error_vs_depth.png"), title)
    plot_error_maps(results, os.path.join(args.out, "error_map.png"), title)
    serial = {name: [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()
                      if k != "error_map"} for r in rows] for name, rows in results.items()}
    with open(os.path.join(args.out, "probe.json"), "w") as fh:
        json.dump({"args": vars(args), "title": title, "variants": serial}, fh, indent=1,
                  default=str)
    print(f"wrote {args.out}/error_vs_depth.png, error_map.png, probe.json")
    return 0
