"""E3 shift robustness: the paper's table (rows = architecture, columns = padding / blur
variant), the diagonal-shift curve and consistency bars."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from jaxeq.experiments.reports.common import (axis, bars, diff_table, fmt_ours, fmt_paper, group,
                                             key_of, legend, md_table, ms, on_imagenet, paper_key,
                                             save, subplots)

PAPER_SECTION = "shift_robustness"  # its numbers in paper_results.json


def table(records, config, paper) -> str:
    """Headline columns: the best-validation checkpoint (the official model_best); the model
    after the last epoch follows in ``final`` columns when the records hold ``*_final`` metrics.
    On another data set than ImageNet the paper's numbers leave our table for one of their own."""
    diag, cons = group(records, "diagonal"), group(records, "consistency")
    top1 = group(records, "top1")
    final = {m: group(records, f"{m}_final") for m in ("top1", "diagonal", "consistency")}
    show_final = any(final.values())
    circ = group(records, "circular_consistency")
    sec = paper.get(PAPER_SECTION, {})
    beside = on_imagenet(config)
    rows = []
    for arch in axis(config, "archs", records):
        for v in axis(config, "variants", records):
            k = key_of(arch=arch, variant=v)
            pk = paper_key(config, v) or v
            row = [arch, v, fmt_ours(top1.get(k), 2)]
            if beside:
                row += [fmt_paper(sec.get("diagonal_shift_top1", {}).get(arch, {}).get(pk), 2),
                        fmt_ours(diag.get(k), 2),
                        fmt_paper(sec.get("consistency", {}).get(arch, {}).get(pk), 2),
                        fmt_ours(cons.get(k), 2)]
            else:
                row += [fmt_ours(diag.get(k), 2), fmt_ours(cons.get(k), 2)]
            if circ:
                row.append(fmt_ours(circ.get(k), 2))
            if show_final:
                row += [fmt_ours(final[m].get(k), 2) for m in ("top1", "diagonal", "consistency")]
            rows.append(row)
    header = ["arch", "variant", "ours top-1 (center)"]
    header += (["diagonal: paper", "diagonal: ours", "consistency: paper", "consistency: ours"]
               if beside else ["diagonal: ours", "consistency: ours"])
    if circ:
        header.append("circular consistency: ours")
    if show_final:
        header += ["final model: top-1", "final model: diagonal", "final model: consistency"]
    out = md_table(header, rows) + _differences(records, config)
    return out if beside else out + _paper_table(config, sec)


def _paper_table(config, sec) -> str:
    """The paper's ImageNet numbers for our variants, every arch it reports, in a table apart."""
    diag, cons = sec.get("diagonal_shift_top1", {}), sec.get("consistency", {})
    vs = [v for v in (config.get("variants", ()) or ())]
    rows = [[arch, v, fmt_paper(diag.get(arch, {}).get(paper_key(config, v) or v), 2),
             fmt_paper(cons.get(arch, {}).get(paper_key(config, v) or v), 2)]
            for arch in dict.fromkeys([*diag, *cons]) for v in vs]
    if not rows:
        return ""
    return ("\n\nThe paper's numbers (ResNets on ImageNet at 224 px: ANOTHER data set, for the "
            "direction of the effects only):\n\n"
            + md_table(["arch", "variant", "diagonal: paper", "consistency: paper"], rows))


def _differences(records, config) -> str:
    """The paired differences of ``config.pairs`` (e.g. full - same) per arch, or ''."""
    pairs = [tuple(p) for p in (config.get("pairs", ()) or ())]
    if not pairs:
        return ""
    rows = [(arch, {"arch": arch}) for arch in axis(config, "archs", records)]
    metrics = ("top1", "diagonal", "consistency", "circular_consistency")
    return ("\n\nPaired differences over seeds (points; mean and 95% t-interval):\n\n"
            + diff_table(records, pairs, metrics, rows, row_header="arch"))


def notes(config: Mapping) -> list[str]:
    """What the E3 numbers were measured on: checkpoint selection and compute dtype."""
    t = dict(config.get("train", {}) or {})
    ev = dict(config.get("eval", {}) or {})
    kw = dict(dict(t.get("data", {}) or {}).get("kwargs", {}) or {})
    dtype = t.get("dtype", "float32")
    by = t.get("best_by", "val_loss")
    val = dict(t.get("data", {}) or {}).get("val_split")
    if val:
        chosen = "highest top-1" if by == "val_accuracy" else "lowest loss"
        which = (f"Headline columns: the best-validation checkpoint ({chosen} on split {val!r} "
                 f"over the epochs{', as the official model_best' if by == 'val_accuracy' else ''})")
    else:
        which = "Headline columns: the model after the last epoch (no validation split)"
    if "final" in tuple(ev.get("models", ()) or ()):
        which += "; 'final model' columns: the parameters after the last epoch."
    else:
        which += "."
    imagenet = str(dict(t.get("data", {}) or {}).get("name", "")).startswith("imagenet")
    top1 = (f"Top-1 (center): resize {kw.get('eval_resize', 256)}, center-crop "
            f"{kw.get('eval_crop', 224)}." if imagenet else "")
    if dtype == "float32":
        precision = "Compute dtype: float32 (training and evaluation), as the official code."
    else:
        precision = (f"Compute dtype: {dtype} (training and evaluation), an option: the paper "
                     f"ran float32, so small differences from its numbers may come from this.")
    return [n for n in (which, top1, precision) if n]


def plot(records, config, paper, outdir):
    paths = []
    archs, vs = axis(config, "archs", records), axis(config, "variants", records)
    # diagonal-shift curve: accuracy per offset (mean over seeds) per variant, one panel per arch
    curves: dict[tuple, list[np.ndarray]] = defaultdict(list)
    for r in records:
        c = r.get("metrics", {}).get("diagonal_curve")
        if c is not None:
            curves[(r["cell"].get("arch"), r["cell"].get("variant"))].append(np.asarray(c, float))
    fig, axes = subplots(1, len(archs), figsize=(4.5 * len(archs), 3.5), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for v in vs:
            cs = curves.get((arch, v))
            if cs:
                ax.plot(np.mean(cs, axis=0), label=v)
        ax.set_xlabel("diagonal offset o (crop at (o, o))")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"diagonal shift: {arch}")
        legend(ax, 8)
    p = save(fig, outdir, "shift_diagonal_curve.png")
    paths.append(p)

    cons = group(records, "consistency")
    sec = paper.get(PAPER_SECTION, {}).get("consistency", {})
    labels = [f"{a}/{v}" for a in archs for v in vs]
    fig, ax = subplots(figsize=(max(5, 0.9 * len(labels)), 3.5))
    series = {"ours: crop": [ms(cons.get(key_of(arch=a, variant=v))) for a in archs for v in vs]}
    circ = group(records, "circular_consistency")
    if circ:
        series["ours: circular"] = [ms(circ.get(key_of(arch=a, variant=v)))
                                    for a in archs for v in vs]
    if on_imagenet(config):  # the paper's bars only beside numbers of the same data set
        series["paper: crop"] = [((sec.get(a, {}).get(paper_key(config, v) or v)), 0.0)
                                 if sec.get(a, {}).get(paper_key(config, v) or v) is not None
                                 else None for a in archs for v in vs]
    bars(ax, labels, series, "consistency (%)")
    ax.set_title("shift consistency (mean ± std over seeds)")
    p = save(fig, outdir, "shift_consistency_bars.png")
    paths.append(p)
    return paths
