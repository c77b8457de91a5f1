"""E4a data efficiency: top-1 vs images per class, as the paper's figure."""
from __future__ import annotations

import numpy as np

from jaxeq.experiments.reports.common import (axis, fmt_ours, fmt_paper, group, key_of, legend,
                                             md_table, ms, paper_key, save, subplots)

PAPER_SECTION = "data_efficiency_imagenet"  # its numbers in paper_results.json


def table(records, config, paper) -> str:
    top1 = group(records, "top1")
    sec = paper.get(PAPER_SECTION, {})
    pn = [str(n) for n in sec.get("images_per_class", [])]
    variants = axis(config, "variants", records)
    rows = []
    for n in axis(config, "images_per_class", records):
        row = [str(n)]
        for v in variants:
            pk = paper_key(config, v) or v
            pv = sec.get(pk)
            p = pv[pn.index(str(n))] if pv and str(n) in pn else None
            row += [fmt_paper(p, 2), fmt_ours(top1.get(key_of(images_per_class=n, variant=v)), 2)]
        rows.append(row)
    header = ["images per class"]
    for v in variants:
        header += [f"{v}: paper", f"{v}: ours"]
    return md_table(header, rows)


def plot(records, config, paper, outdir):
    top1 = group(records, "top1")
    sec = paper.get(PAPER_SECTION, {})
    ns, vs = axis(config, "images_per_class", records), axis(config, "variants", records)
    fig, ax = subplots(figsize=(5, 3.5))
    labels = [str(n) for n in ns]
    for i, v in enumerate(vs):
        ys = [ms(top1.get(key_of(images_per_class=n, variant=v))) for n in ns]
        if any(y is not None for y in ys):
            ax.errorbar(range(len(ns)), [y[0] if y else np.nan for y in ys],
                        yerr=[y[1] if y else 0 for y in ys], marker="o", color=f"C{i}", label=f"ours {v}")
        pk = paper_key(config, v) or v
        if sec.get(pk):
            pn = [str(n) for n in sec["images_per_class"]]
            xs = [labels.index(n) for n in pn if n in labels]
            ax.plot(xs, [sec[pk][pn.index(labels[x])] for x in xs], marker="x", ls=":",
                    color=f"C{i}", label=f"paper {pk}")
    ax.set_xticks(range(len(ns)), labels)
    ax.set_xlabel("training images per class")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("data efficiency (E4a)")
    legend(ax, 8)
    p = save(fig, outdir, "data_efficiency_curve.png")
    return [p]
