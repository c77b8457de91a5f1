"""Shared pieces of the experiment reports: seed aggregation, number formats, markdown tables
and matplotlib helpers (object API on an Agg canvas: no pyplot, no global backend).

Records are plain dicts, as the runner writes them into ``results.json``::

    {"name": "same_zero/s0",                      # the cell's sub-workdir, relative
     "cell": {"variant": "same_zero", "seed": 0},  # its coordinates on the experiment's axes
     "metrics": {"similar": 99.5, "dissimilar": 7.9},   # percent
     "epochs": 23, "wall_s": 12.3}

Seeds are aggregated as mean +- std; the std is numpy's population std (ddof=0) over the seeds
that ran. Cells that have not run read "not run".
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from jaxeq import atomic

NOT_RUN = "not run"
DASH = "–"


def group(records: Iterable[Mapping], metric: str, *, over: str = "seed") -> dict[tuple, list[float]]:
    """Values of ``metric`` grouped by every cell coordinate except ``over`` (seeds by default).

    Keys are tuples of sorted ``(axis, value)`` pairs, so ``key_of(variant="same_zero")`` finds them.
    """
    out: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        value = r.get("metrics", {}).get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        key = tuple(sorted((k, v) for k, v in r["cell"].items() if k != over))
        out[key].append(float(value))
    return dict(out)


def key_of(**coords) -> tuple:
    return tuple(sorted(coords.items()))


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std()), int(a.size)


def fmt_ours(values: Sequence[float] | None, digits: int = 1) -> str:
    """``mean ± std (n=k)`` over seeds, a plain number for one run, "not run" for none."""
    if not values:
        return NOT_RUN
    m, s, n = mean_std(values)
    if n == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f} (n={n})"


def fmt_paper(value, digits: int = 1) -> str:
    """A paper number: ``[mean, std]`` -> ``mean ± std``; a number -> itself; None -> a dash."""
    if value is None:
        return DASH
    if isinstance(value, (list, tuple)):
        return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"
    return f"{value:.{digits}f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def axis(config: Mapping, name: str, records: Sequence[Mapping]) -> list:
    """The values of an axis in config order, plus any that only appear in the records."""
    values = list(config.get(name, ()) or ())
    for r in records:
        v = r["cell"].get(name)
        if v is not None and v not in values:
            values.append(v)
    return values


def paper_key(config: Mapping, variant: str) -> str | None:
    """The paper's name for ``variant`` (``config.paper_key``), or None."""
    return dict(config.get("paper_key", {}) or {}).get(variant)


def on_imagenet(config: Mapping) -> bool:
    """Whether the config trains on ImageNet: then the paper's numbers share our table columns;
    on another data set they get a table (and an axis) of their own."""
    data = dict(dict(config.get("train", {}) or {}).get("data", {}) or {})
    return str(data.get("name", "imagenet")).startswith("imagenet")


def subplots(nrows=1, ncols=1, *, figsize, squeeze=True):
    """A figure drawn with matplotlib's object API (Agg canvas): no pyplot, no global backend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save(fig, outdir: Path, filename: str) -> Path:
    """Lay out ``fig`` and write it as ``outdir/filename`` (PNG, 100 dpi)."""
    fig.tight_layout()
    p = outdir / filename
    atomic.save_figure(fig, p, dpi=100)
    return p


def legend(ax, size):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)


def bars(ax, labels, series: dict[str, list[tuple[float, float] | None]], ylabel: str):
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, vals) in enumerate(series.items()):
        m = [v[0] if v else np.nan for v in vals]
        s = [v[1] if v else 0.0 for v in vals]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, m, width, yerr=s, capsize=3, label=name)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    legend(ax, 8)


def ms(vals):
    if not vals:
        return None
    m, s, _ = mean_std(vals)
    return (m, s)


# ----------------------------------------------------------------------------- paired differences
# two-sided 95% Student t quantiles t_{0.975, df} for df = 1..30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (a table up to 30, then
    the Cornish-Fisher expansion around the normal quantile, good to 1e-3)."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def by_seed(records: Iterable[Mapping], metric: str, **coords) -> dict:
    """``{seed: value}`` of ``metric`` over the records whose cell matches ``coords``."""
    out = {}
    for r in records:
        cell = r["cell"]
        value = r.get("metrics", {}).get(metric)
        if value is None or any(cell.get(k) != v for k, v in coords.items()):
            continue
        out[cell.get("seed")] = float(value)
    return out


def paired_difference(a: Mapping, b: Mapping) -> dict | None:
    """``a - b`` paired by seed (``{seed: value}`` each, only seeds in both): mean, sample std
    (ddof=1), n and the 95% Student t-interval of the mean difference; None without a pair.
    With one pair the interval is undefined (nan)."""
    seeds = [s for s in a if s in b]
    if not seeds:
        return None
    d = np.array([a[s] - b[s] for s in seeds], np.float64)
    n = d.size
    mean = float(d.mean())
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": 1, "lo": math.nan, "hi": math.nan}
    sd = float(d.std(ddof=1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "std": sd, "n": n, "lo": mean - half, "hi": mean + half}


def fmt_diff(diff: Mapping | None, digits: int = 2) -> str:
    """``+1.23 [-0.40, +2.86] (n=5)``: mean paired difference and its 95% t-interval."""
    if diff is None:
        return NOT_RUN
    if diff["n"] < 2:
        return f"{diff['mean']:+.{digits}f} (n=1, no interval)"
    return (f"{diff['mean']:+.{digits}f} [{diff['lo']:+.{digits}f}, {diff['hi']:+.{digits}f}] "
            f"(n={diff['n']})")


def diff_table(records: Sequence[Mapping], pairs: Sequence[tuple[str, str]], metrics: Sequence[str],
               rows: Sequence[tuple[str, Mapping]], digits: int = 2, row_header: str = "") -> str:
    """A markdown table of paired differences: one row per (row label, cell coordinates) and
    pair ``(a, b)`` of variants, one column per metric (``a - b`` over seeds, 95% t-interval);
    metrics no record holds are left out."""
    metrics = [m for m in metrics if any(m in r.get("metrics", {}) for r in records)]
    out = []
    for label, coords in rows:
        for a, b in pairs:
            out.append([label, f"{a} − {b}"] + [
                fmt_diff(paired_difference(by_seed(records, m, **coords, variant=a),
                                           by_seed(records, m, **coords, variant=b)), digits)
                for m in metrics])
    return md_table([row_header, "difference", *[f"{m}: mean [95% CI]" for m in metrics]], out)
