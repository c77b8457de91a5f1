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


# ----------------------------------------------------------------------------- padding report

def _per_dim(values) -> str:
    """One entry per spatial dim, shown once when every dim agrees: (3, 2) or (3, 2)/(3, 3)."""
    items = [str(tuple(v)) if isinstance(v, (tuple, list)) else str(v) for v in values]
    return items[0] if len(set(items)) == 1 else "/".join(items)


PADDING_COLUMNS = ("layer", "kind", "window", "stride", "in", "out", "pads (lo, hi)", "dropped",
                   "used (lo, hi)", "uneven", "bias frame")


def padding_cells(result: dict) -> list[list[str]]:
    """The cells of one variant's padding table (rows of :data:`PADDING_COLUMNS`)."""
    rows = []
    for r in result["layers"]:
        width = result["bias_width"].get(r.path, "-")
        rows.append([r.path, r.kind, _per_dim(r.window), _per_dim(r.stride),
                     _per_dim(r.input_size), _per_dim(r.output_size), _per_dim(r.pads),
                     _per_dim(r.dropped), _per_dim(r.effective), "UNEVEN" if r.uneven else "",
                     "none constant" if width is None else str(width)])
    return rows


def render_padding_table(name: str, result: dict, title: str):
    """One variant's padding report as a rich table."""
    from rich.table import Table

    t = Table(title=f"{name}: {title}")
    for col in PADDING_COLUMNS:
        t.add_column(col, no_wrap=True, justify="left" if col in ("layer", "kind") else "right")
    for cells in padding_cells(result):
        t.add_row(*cells, style="bold red" if cells[-2] else None)
    return t


def padding_summary(name: str, result: dict, sizes: tuple[int, int]) -> str:
    n_uneven = sum(r.uneven for r in result["layers"])
    even = result["even_sizes"]
    shown = ", ".join(map(str, even[:8])) + (" ..." if len(even) > 8 else "")
    return (f"{name}: {n_uneven} of {len(result['layers'])} windowed layers uneven; input sizes "
            f"in [{sizes[0]}, {sizes[1]}] with none: {shown or 'none'}")


def padding_markdown(results: dict[str, dict], title: str, sizes: tuple[int, int]) -> str:
    """The padding report of every variant as markdown tables."""
    lines = [f"# {title}", ""]
    for name, result in results.items():
        lines += [f"## {name}", "", padding_summary(name, result, sizes), "",
                  "| " + " | ".join(PADDING_COLUMNS) + " |",
                  "|" + "---|" * len(PADDING_COLUMNS)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |"
                  for cells in padding_cells(result)]
        lines.append("")
    return "\n".join(lines)


def _image(ax, fig, m, title: str, cmap: str = "viridis", **kwargs) -> None:
    im = ax.imshow(m, cmap=cmap, **kwargs)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046)


def plot_bias_maps(results: dict[str, dict], path: str, title: str, layers: int = 6) -> None:
    """A row of spatial-bias maps per variant (a few layers in depth order; a video model's
    maps averaged over time)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    picks = {}
    for name, result in results.items():
        maps = list(result["bias_maps"].items())
        idx = np.unique(np.linspace(0, len(maps) - 1, min(layers, len(maps))).round()
                        .astype(int)) if maps else []
        picks[name] = [maps[i] for i in idx]
    ncol = max((len(p) for p in picks.values()), default=1) or 1
    fig = Figure(figsize=(2.8 * ncol, 2.6 * len(picks)))
    FigureCanvasAgg(fig)
    for i, (name, maps) in enumerate(picks.items()):
        for j, (layer, m) in enumerate(maps):
            m = np.asarray(m)
            m = m.reshape((-1,) + m.shape[-2:]).mean(axis=0) if m.ndim > 2 else m
            m = m[None] if m.ndim == 1 else m
            _image(fig.add_subplot(len(picks), ncol, i * ncol + j + 1), fig, m,
                   f"{name}\n{layer}")
    fig.suptitle(textwrap.fill(title, 140), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ----------------------------------------------------------------------------- worst case

def render_worst_case(results: dict[str, dict], title: str):
    from rich.table import Table

    t = Table(title=title)
    for col in ("variant", "images", "shifts", "worst-case consistency", "consistency", "MAC",
                "max flip fraction"):
        t.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    for name, r in results.items():
        t.add_row(name, str(r["n_images"]), str(r["n_shifts"]),
                  f"{r['worst_case_consistency']:.3f}", f"{r['consistency']:.3f}",
                  f"{r['mac']:.2e}", f"{r['max_flip_fraction']:.3f}")
    return t


def plot_flip_maps(results: dict[str, dict], path: str, title: str) -> None:
    """Per variant, the fraction of images whose top-1 class changes at each shift."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = {k: r for k, r in results.items() if r.get("flip_map") is not None}
    fig = Figure(figsize=(3.4 * max(1, len(shown)), 3.2))
    FigureCanvasAgg(fig)
    for i, (name, r) in enumerate(shown.items()):
        ax = fig.add_subplot(1, max(1, len(shown)), i + 1)
        (dy, dx) = r["flip_map_axes"]
        _image(ax, fig, np.asarray(r["flip_map"], float), f"{name}\nflip fraction", "magma",
               vmin=0.0, vmax=1.0, extent=(dx[0] - 0.5, dx[-1] + 0.5, dy[-1] + 0.5, dy[0] - 0.5))
        ax.set_xticks([dx[0], 0, dx[-1]])
        ax.set_yticks([dy[0], 0, dy[-1]])
        ax.set_xlabel("shift x", fontsize=7)
        ax.set_ylabel("shift y", fontsize=7)
    fig.suptitle(textwrap.fill(title, 120), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def render_position(results: dict[str, dict], title: str):
    """Per variant: SPC / MAE of the all-layer position readout per test set, then the border
    reach (input pixels) of each layer."""
    from rich.table import Table

    first = next(iter(results.values()))
    tests, layers = list(first["summary"]), first["layers"]
    t = Table(title=title)
    t.add_column("variant", no_wrap=True)
    for name in tests:
        t.add_column(f"{name}\nSPC / MAE", justify="right", no_wrap=True)
    for name in layers:
        t.add_column(f"reach\n{name}", justify="right", no_wrap=True)
    for name, r in results.items():
        reach = {b["layer"]: b["reach"] for b in r["border_reach"]}
        t.add_row(name, *[f"{r['summary'][k]['spc']:.2f} / {r['summary'][k]['mae']:.3f}"
                          for k in tests], *[f"{reach[k]:g}" for k in layers])
    return t


def plot_position(summaries: dict[str, dict], path: str, title: str | None = None) -> None:
    """Bars of the all-layer readout's SPC per test set, one bar per labelled net."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from jaxeq import atomic

    tests = list(next(iter(summaries.values())))
    fig = Figure(figsize=(7, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(summaries)
    for i, (label, summary) in enumerate(summaries.items()):
        ax.bar(np.arange(len(tests)) + i * width, [summary[t]["spc"] for t in tests], width,
               label=label)
    ax.set_xticks(np.arange(len(tests)) + 0.4 - width / 2, tests)
    ax.set_ylabel("SPC (all layers, mean over targets)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=6, ncol=2)
    if title:
        fig.suptitle(textwrap.fill(title, 120), fontsize=8)
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=120)
