"""Tables and figures of ``jaxeq probe``: the layer table per padding/fill variant (rich),
error versus depth and per-pixel error maps (matplotlib), and the questions table."""
from __future__ import annotations

import math
import textwrap

import numpy as np

from jaxeq.analysis.probe import QUESTION_COLUMNS


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
