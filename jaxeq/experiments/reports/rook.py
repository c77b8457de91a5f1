"""E0 rook: the paper's table (rows = border handling) and a bar plot."""
from __future__ import annotations

from jaxeq.experiments.reports.common import (DASH, NOT_RUN, axis, bars, fmt_ours, fmt_paper,
                                             group, key_of, md_table, ms, paper_key, save, subplots)

PAPER_SECTION = "rook"  # its numbers in paper_results.json


def table(records, config, paper) -> str:
    accs = group(records, "accuracy")
    per_seed = {}
    for r in records:
        per_seed.setdefault(r["cell"]["variant"], []).append(r["metrics"].get("accuracy"))
    sec = paper.get(PAPER_SECTION, {}).get("accuracy_percent", {})
    rows = []
    for v in axis(config, "variants", records):
        vals = accs.get(key_of(variant=v))
        pk = paper_key(config, v)
        seeds = [a for a in per_seed.get(v, []) if a is not None]
        rows.append([
            v, fmt_paper(sec.get(pk)) if pk else DASH, fmt_ours(vals),
            f"{sum(a >= 100.0 - 1e-9 for a in seeds)}/{len(seeds)}" if seeds else NOT_RUN,
            ", ".join(f"{a:.0f}" for a in seeds) if seeds else NOT_RUN,
        ])
    return md_table(["variant", "paper acc. (%)", "ours acc. (%)", "seeds at 100%", "ours per seed"], rows)


def plot(records, config, paper, outdir):
    acc = group(records, "accuracy")
    vs = axis(config, "variants", records)
    fig, ax = subplots(figsize=(4, 3))
    bars(ax, vs, {"ours": [ms(acc.get(key_of(variant=v))) for v in vs]}, "accuracy (%)")
    ax.axhline(50, color="gray", ls=":", lw=1)
    ax.set_title("Rook (E0)")
    p = save(fig, outdir, "rook_accuracy.png")
    return [p]
