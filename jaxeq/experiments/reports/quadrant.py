"""E1 quadrant ImageNet (4QI): accuracy vs border per architecture and initialisation, as
the paper's figure."""
from __future__ import annotations

import numpy as np

from jaxeq.experiments.reports.common import (axis, fmt_ours, fmt_paper, group, key_of, legend,
                                             md_table, ms, paper_key, save, subplots)

PAPER_SECTION = "quadrant_imagenet"  # its numbers in paper_results.json


def table(records, config, paper) -> str:
    """Rows (arch, init, variant); columns the borders; cells ``ours / paper``, or
    ``ours test / ours train images / paper`` when the records also hold ``accuracy_train``.

    The paper's 4QI nets are the architectures as published: their numbers sit beside our
    variants whose ``paper_key`` maps to them; other variants (full) have no paper number.
    """
    acc = group(records, "accuracy")
    acc_train = group(records, "accuracy_train")
    sec = paper.get(PAPER_SECTION, {})
    pborders = list(sec.get("borders", []))
    borders = axis(config, "borders", records)
    rows = []
    for arch in axis(config, "archs", records):
        for init in axis(config, "inits", records):
            for v in axis(config, "variants", records):
                pk = paper_key(config, v)
                pvals = sec.get("accuracy_percent", {}).get(arch, {}).get(init) if pk else None
                cells = []
                for b in borders:
                    key = key_of(arch=arch, border=b, init=init, variant=v)
                    ours = fmt_ours(acc.get(key))
                    if acc_train:
                        ours += f" / {fmt_ours(acc_train.get(key))}"
                    p = pvals[pborders.index(b)] if pvals and b in pborders else None
                    cells.append(f"{ours} / {fmt_paper(p)}")
                rows.append([arch, init, v, *cells])
    what = "ours test / ours train images / paper" if acc_train else "ours / paper"
    return md_table(["arch", "init", "variant", *[f"border {b}: {what}" for b in borders]], rows)


def plot(records, config, paper, outdir):
    acc = group(records, "accuracy")
    sec = paper.get(PAPER_SECTION, {})
    archs, inits = axis(config, "archs", records), axis(config, "inits", records)
    vs, borders = axis(config, "variants", records), axis(config, "borders", records)
    fig, axes = subplots(1, len(archs), figsize=(4.5 * len(archs), 3.5), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for i, init in enumerate(inits):
            color = f"C{i}"
            for j, v in enumerate(vs):
                ys = [ms(acc.get(key_of(arch=arch, border=b, init=init, variant=v))) for b in borders]
                if any(y is not None for y in ys):
                    ax.plot(range(len(borders)), [y[0] if y else np.nan for y in ys],
                            marker="o", ls=["-", "--", "-."][j % 3], color=color,
                            label=f"ours {init} {v}")
            pvals = sec.get("accuracy_percent", {}).get(arch, {}).get(init)
            if pvals and any(paper_key(config, v) for v in vs):
                pb = sec["borders"]
                ax.plot([borders.index(b) for b in pb if b in borders],
                        [pvals[k] for k, b in enumerate(pb) if b in borders],
                        marker="x", ls=":", color=color, label=f"paper {init}")
        ax.set_xticks(range(len(borders)), [str(b) for b in borders])
        ax.set_xlabel("border (px)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 105)
        ax.axhline(50, color="gray", lw=0.8)
        ax.set_title(f"4QI: {arch}")
        legend(ax, 7)
    p = save(fig, outdir, "quadrant_accuracy_vs_border.png")
    return [p]
