"""E4a data efficiency: top-1 vs images per class, as the paper's figure.

On ImageNet our numbers sit beside the paper's in one table and one axis. On another data set
(the ``cpu`` analog on photographs) the paper's ImageNet numbers get their own table and their
own axis, labelled as another data set, and ours come with the paired differences of
``config.pairs`` (e.g. full - same) and their 95% t-intervals.
"""
from __future__ import annotations

import numpy as np

from jaxeq.experiments.reports.common import (axis, diff_table, fmt_ours, fmt_paper, group, key_of,
                                             legend, md_table, ms, on_imagenet, paper_key, save,
                                             subplots)

PAPER_SECTION = "data_efficiency_imagenet"  # its numbers in paper_results.json


def table(records, config, paper) -> str:
    if not on_imagenet(config):
        return _table_other_data(records, config, paper)
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


def _table_other_data(records, config, paper) -> str:
    """Ours (with paired differences) and, apart, the paper's ImageNet numbers."""
    top1 = group(records, "top1")
    variants = axis(config, "variants", records)
    sizes = axis(config, "images_per_class", records)
    rows = [[str(n)] + [fmt_ours(top1.get(key_of(images_per_class=n, variant=v)), 2)
                        for v in variants] for n in sizes]
    out = md_table(["images per class", *[f"{v}: ours" for v in variants]], rows)
    pairs = [tuple(p) for p in (config.get("pairs", ()) or ())]
    if pairs:
        out += ("\n\nPaired differences over seeds (points; mean and 95% t-interval):\n\n"
                + diff_table(records, pairs, ("top1",),
                             [(str(n), {"images_per_class": n}) for n in sizes],
                             row_header="images per class"))
    sec = paper.get(PAPER_SECTION, {})
    if sec.get("images_per_class"):
        pv = [v for v in variants if sec.get(paper_key(config, v) or v)]
        prow = [[str(sec["images_per_class"][i])] +
                [fmt_paper(sec[paper_key(config, v) or v][i], 2) for v in pv]
                for i in _ascending(sec)]
        out += ("\n\nThe paper's numbers (ResNet-50 on ImageNet: ANOTHER data set and model, "
                "for the direction of the effect only):\n\n"
                + md_table(["ImageNet images per class", *[f"{v}: paper" for v in pv]], prow))
    return out


def plot(records, config, paper, outdir):
    top1 = group(records, "top1")
    sec = paper.get(PAPER_SECTION, {})
    ns, vs = axis(config, "images_per_class", records), axis(config, "variants", records)
    imagenet = on_imagenet(config)
    fig, axes = subplots(1, 1 if imagenet else 2, figsize=(5 if imagenet else 10, 3.5),
                         squeeze=False)
    ax = axes[0][0]
    labels = [str(n) for n in ns]
    for i, v in enumerate(vs):
        ys = [ms(top1.get(key_of(images_per_class=n, variant=v))) for n in ns]
        if any(y is not None for y in ys):
            ax.errorbar(range(len(ns)), [y[0] if y else np.nan for y in ys],
                        yerr=[y[1] if y else 0 for y in ys], marker="o", color=f"C{i}",
                        capsize=3, label=f"ours {v}")
        pk = paper_key(config, v) or v
        if imagenet and sec.get(pk):
            pn = [str(n) for n in sec["images_per_class"]]
            xs = [labels.index(n) for n in pn if n in labels]
            ax.plot(xs, [sec[pk][pn.index(labels[x])] for x in xs], marker="x", ls=":",
                    color=f"C{i}", label=f"paper {pk}")
    ax.set_xticks(range(len(ns)), labels)
    ax.set_xlabel("training images per class")
    ax.set_ylabel("top-1 (%)")
    data = dict(dict(config.get("train", {}) or {}).get("data", {}) or {}).get("name", "")
    ax.set_title("data efficiency (E4a)" if imagenet else f"ours: {data} (mean ± std over seeds)")
    legend(ax, 8)
    if not imagenet:
        _paper_axis(axes[0][1], config, sec, vs)
    p = save(fig, outdir, "data_efficiency_curve.png")
    return [p]


def _ascending(sec) -> list[int]:
    """Indices of the paper's sizes from the fewest images per class to 'all'."""
    sizes = sec.get("images_per_class", [])
    return sorted(range(len(sizes)), key=lambda i: (sizes[i] == "all", 0 if sizes[i] == "all"
                                                    else int(sizes[i])))


def _paper_axis(ax, config, sec, variants) -> None:
    """The paper's ImageNet curve on its own axis (another data set)."""
    order = _ascending(sec)
    pn = [str(sec["images_per_class"][i]) for i in order]
    for i, v in enumerate(variants):
        pk = paper_key(config, v) or v
        if pn and sec.get(pk):
            ax.plot(range(len(pn)), [sec[pk][j] for j in order], marker="x", ls=":",
                    color=f"C{i}", label=f"paper {pk}")
    ax.set_xticks(range(len(pn)), pn)
    ax.set_xlabel("ImageNet training images per class")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("the paper: ResNet-50 on ImageNet (another data set)")
    legend(ax, 8)
