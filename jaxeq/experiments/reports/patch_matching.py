"""E4b patch matching: FPR at 95% recall (%, lower is better) vs training triplets.

On Brown / PhotoTour our numbers sit beside the paper's in one table and on one axis. On the
CPU analog (``patch_pairs``) the paper's PhotoTour numbers get their own table and axis,
labelled as another data set, and ours come with the paired differences of ``config.pairs``
(full - same: negative means full matches better) and their 95% t-intervals.
"""
from __future__ import annotations

import numpy as np

from jaxeq.experiments.reports.common import (axis, diff_table, fmt_ours, fmt_paper, group, key_of,
                                             legend, md_table, ms, paper_key, save, subplots)

PAPER_SECTION = "patch_matching"
PAPER_LABEL = "Brown/PhotoTour (paper)"
METRIC = "fpr95"


def _on_phototour(config) -> bool:
    data = dict(dict(config.get("train", {}) or {}).get("data", {}) or {})
    return data.get("name", "phototour") == "phototour"


def _paper(sec, config, variant, n):
    """The paper's FPR95 in percent for ``variant`` at ``n`` triplets (None if absent)."""
    vals, ns = sec.get(paper_key(config, variant) or variant), list(sec.get("triplets", []))
    return 100.0 * vals[ns.index(n)] if vals and n in ns else None


def table(records, config, paper) -> str:
    fpr = group(records, METRIC)
    sec = paper.get(PAPER_SECTION, {})
    variants, sizes = axis(config, "variants", records), axis(config, "triplets", records)
    ours_label = "ours" if _on_phototour(config) else "CPU analog"
    header, rows = ["training triplets"], []
    for v in variants:
        header += ([f"{v}: {PAPER_LABEL}"] if _on_phototour(config) else []) + [f"{v}: {ours_label}"]
    for n in sizes:
        row = [str(n)]
        for v in variants:
            if _on_phototour(config):
                row.append(fmt_paper(_paper(sec, config, v, n), 1))
            row.append(fmt_ours(fpr.get(key_of(triplets=n, variant=v)), 2))
        rows.append(row)
    out = "FPR at 95% recall, % (lower is better)\n\n" + md_table(header, rows)
    pairs = [tuple(p) for p in (config.get("pairs", ()) or ())]
    if pairs:
        out += ("\n\nPaired differences over seeds (FPR95 points; negative: the first matches "
                "better; mean and 95% t-interval):\n\n"
                + diff_table(records, pairs, (METRIC,), [(str(n), {"triplets": n}) for n in sizes],
                             row_header="training triplets"))
    if not _on_phototour(config) and sec.get("triplets"):
        pv = [v for v in variants if sec.get(paper_key(config, v) or v)]
        prow = [[str(n)] + [fmt_paper(_paper(sec, config, v, n), 1) for v in pv]
                for n in sorted(sec["triplets"])]
        out += (f"\n\n{PAPER_LABEL}: HardNet trained on Yosemite, FPR95 % on Liberty / Notre "
                "Dame, read off the paper's figure (ANOTHER data set: for the direction of the "
                "effect only):\n\n" + md_table(["PhotoTour training triplets",
                                                 *[f"{v}: {PAPER_LABEL}" for v in pv]], prow))
    return out


def plot(records, config, paper, outdir):
    fpr = group(records, METRIC)
    sec = paper.get(PAPER_SECTION, {})
    ns, vs = axis(config, "triplets", records), axis(config, "variants", records)
    phototour = _on_phototour(config)
    fig, axes = subplots(1, 1 if phototour else 2, figsize=(5 if phototour else 10, 3.5),
                         squeeze=False)
    ax = axes[0][0]
    for i, v in enumerate(vs):
        ys = [ms(fpr.get(key_of(triplets=n, variant=v))) for n in ns]
        if any(y is not None for y in ys):
            ax.errorbar(ns, [y[0] if y else np.nan for y in ys], yerr=[y[1] if y else 0 for y in ys],
                        marker="o", color=f"C{i}", capsize=3,
                        label=f"{'ours' if phototour else 'CPU analog'} {v}")
        if phototour:
            pts = [(n, _paper(sec, config, v, n)) for n in sorted(sec.get("triplets", []))]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                ax.plot(*zip(*pts), marker="x", ls=":", color=f"C{i}", label=f"{PAPER_LABEL} {v}")
    _axes(ax, ns, "training triplets", "FPR95 (%)")
    ax.set_title("patch matching (E4b)" if phototour else "CPU analog: patch_pairs (mean ± std)")
    legend(ax, 8)
    if not phototour:
        bx = axes[0][1]
        for i, v in enumerate(vs):
            pts = [(n, _paper(sec, config, v, n)) for n in sorted(sec.get("triplets", []))]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                bx.plot(*zip(*pts), marker="x", ls=":", color=f"C{i}", label=f"paper {v}")
        _axes(bx, sorted(sec.get("triplets", [])), "PhotoTour training triplets", "FPR95 (%)")
        bx.set_title(f"{PAPER_LABEL}: another data set")
        legend(bx, 8)
    return [save(fig, outdir, "patch_matching_curve.png")]


def _axes(ax, ticks, xlabel, ylabel) -> None:
    """A log x axis labelled at the triplet counts only (no crowded minor labels)."""
    ax.set_xscale("log")
    if ticks:
        ax.set_xticks(list(ticks), [f"{n // 1000}k" if n >= 10000 else str(n) for n in ticks])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def notes(config) -> list[str]:
    return ["Metric: FPR at 95% recall of the matching pairs (EvalMetrics.ErrorRateAt95Recall), "
            "in %; lower is better."]
