"""Results tables and plots for the paper's experiments: our numbers beside the paper's.

Everything here works on *records*, plain dicts that the runner writes into ``results.json``::

    {"name": "same_zero/s0",                      # the cell's sub-workdir, relative
     "cell": {"variant": "same_zero", "seed": 0},  # its coordinates on the experiment's axes
     "metrics": {"similar": 99.5, "dissimilar": 7.9},   # percent
     "epochs": 23, "wall_s": 12.3}

so the tables can be rebuilt (and tested) from given numbers without running anything. Seeds are
aggregated as mean +- std; the std is numpy's population std (ddof=0) over the seeds that ran.
The layouts follow the paper: rook and red-green as its tables (rows = border handling),
quadrant ImageNet as its figure (accuracy vs border per architecture and initialisation),
shift robustness as its table (rows = architecture, columns = padding / blur variant) and data
efficiency as its figure (top-1 vs images per class). Cells that have not run read "not run".
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

EXPERIMENTS = ("rook", "red_green", "quadrant", "shift_robustness", "data_efficiency")
# the key of each experiment's numbers in paper_results.json
PAPER_SECTION = {
    "rook": "rook",
    "red_green": "red_green",
    "quadrant": "quadrant_imagenet",
    "shift_robustness": "shift_robustness",
    "data_efficiency": "data_efficiency_imagenet",
}
NOT_RUN = "not run"
DASH = "–"


def default_paper_results_path() -> Path:
    """``experiments/paper_results.json`` of the source checkout this package lives in."""
    return Path(__file__).resolve().parents[1] / "experiments" / "paper_results.json"


def load_paper_results(path: str | Path | None = None) -> dict:
    path = Path(path) if path is not None else default_paper_results_path()
    if not path.is_file():
        raise FileNotFoundError(f"paper results not found at {path} (expected experiments/paper_results.json)")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- aggregation
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


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _axis(config: Mapping, name: str, records: Sequence[Mapping]) -> list:
    """The values of an axis in config order, plus any that only appear in the records."""
    values = list(config.get(name, ()) or ())
    for r in records:
        v = r["cell"].get(name)
        if v is not None and v not in values:
            values.append(v)
    return values


def _paper_key(config: Mapping, variant: str) -> str | None:
    return dict(config.get("paper_key", {}) or {}).get(variant)


# ----------------------------------------------------------------------------- tables
def rook_table(records, config, paper) -> str:
    accs = group(records, "accuracy")
    per_seed = {}
    for r in records:
        per_seed.setdefault(r["cell"]["variant"], []).append(r["metrics"].get("accuracy"))
    sec = paper.get("rook", {}).get("accuracy_percent", {})
    rows = []
    for v in _axis(config, "variants", records):
        vals = accs.get(key_of(variant=v))
        pk = _paper_key(config, v)
        seeds = [a for a in per_seed.get(v, []) if a is not None]
        rows.append([
            v, fmt_paper(sec.get(pk)) if pk else DASH, fmt_ours(vals),
            f"{sum(a >= 100.0 - 1e-9 for a in seeds)}/{len(seeds)}" if seeds else NOT_RUN,
            ", ".join(f"{a:.0f}" for a in seeds) if seeds else NOT_RUN,
        ])
    return _md_table(["variant", "paper acc. (%)", "ours acc. (%)", "seeds at 100%", "ours per seed"], rows)


def _extra_pairs(records, config, first: str, second: str) -> list[tuple[str, str]]:
    """(suffix, label) of every extra test-set pair ``<first>_<suffix>`` / ``<second>_<suffix>``
    the records hold (e.g. the same model tested on held-out or official sets); labels come
    from ``config.set_labels`` (default: the suffix)."""
    labels = dict(config.get("set_labels", {}) or {})
    found = []
    for r in records:
        for name in r.get("metrics", {}):
            suffix = name.removeprefix(first + "_")
            if name.startswith(first + "_") and suffix not in found:
                found.append(suffix)
    return [(s, labels.get(s, s)) for s in found]


def red_green_table(records, config, paper) -> str:
    sim, dis = group(records, "similar"), group(records, "dissimilar")
    extras = [(label, group(records, f"similar_{s}"), group(records, f"dissimilar_{s}"))
              for s, label in _extra_pairs(records, config, "similar", "dissimilar")]
    sec = paper.get("red_green", {})
    rows = []
    for v in _axis(config, "variants", records):
        pk = _paper_key(config, v)
        label = v if not pk or pk == v else f"{v} (paper row: {pk})"
        row = [
            label,
            fmt_paper(sec.get("similar_test", {}).get(pk)) if pk else DASH,
            fmt_ours(sim.get(key_of(variant=v))),
            fmt_paper(sec.get("dissimilar_test", {}).get(pk)) if pk else DASH,
            fmt_ours(dis.get(key_of(variant=v))),
        ]
        for _, s_extra, d_extra in extras:
            row += [fmt_ours(s_extra.get(key_of(variant=v))), fmt_ours(d_extra.get(key_of(variant=v)))]
        rows.append(row)
    header = ["variant", "similar: paper", "similar: ours", "dissimilar: paper", "dissimilar: ours"]
    for label, _, _ in extras:
        header += [f"similar: ours, {label}", f"dissimilar: ours, {label}"]
    return _md_table(header, rows)


def quadrant_table(records, config, paper) -> str:
    """Rows (arch, init, variant); columns the borders; cells ``ours / paper``, or
    ``ours test / ours train images / paper`` when the records also hold ``accuracy_train``.

    The paper's 4QI nets are the architectures as published: their numbers sit beside our
    variants whose ``paper_key`` maps to them; other variants (full) have no paper number.
    """
    acc = group(records, "accuracy")
    acc_train = group(records, "accuracy_train")
    sec = paper.get("quadrant_imagenet", {})
    pborders = list(sec.get("borders", []))
    borders = _axis(config, "borders", records)
    rows = []
    for arch in _axis(config, "archs", records):
        for init in _axis(config, "inits", records):
            for v in _axis(config, "variants", records):
                pk = _paper_key(config, v)
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
    return _md_table(["arch", "init", "variant", *[f"border {b}: {what}" for b in borders]], rows)


def shift_robustness_table(records, config, paper) -> str:
    """Headline columns: the best-validation checkpoint (the official model_best); the model
    after the last epoch follows in ``final`` columns when the records hold ``*_final`` metrics."""
    diag, cons = group(records, "diagonal"), group(records, "consistency")
    top1 = group(records, "top1")
    final = {m: group(records, f"{m}_final") for m in ("top1", "diagonal", "consistency")}
    show_final = any(final.values())
    sec = paper.get("shift_robustness", {})
    rows = []
    for arch in _axis(config, "archs", records):
        for v in _axis(config, "variants", records):
            k = key_of(arch=arch, variant=v)
            pk = _paper_key(config, v) or v
            row = [
                arch, v, fmt_ours(top1.get(k), 2),
                fmt_paper(sec.get("diagonal_shift_top1", {}).get(arch, {}).get(pk), 2),
                fmt_ours(diag.get(k), 2),
                fmt_paper(sec.get("consistency", {}).get(arch, {}).get(pk), 2),
                fmt_ours(cons.get(k), 2),
            ]
            if show_final:
                row += [fmt_ours(final[m].get(k), 2) for m in ("top1", "diagonal", "consistency")]
            rows.append(row)
    header = ["arch", "variant", "ours top-1 (center)", "diagonal: paper", "diagonal: ours",
              "consistency: paper", "consistency: ours"]
    if show_final:
        header += ["final model: top-1", "final model: diagonal", "final model: consistency"]
    return _md_table(header, rows)


def shift_robustness_notes(config: Mapping) -> list[str]:
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


def data_efficiency_table(records, config, paper) -> str:
    top1 = group(records, "top1")
    sec = paper.get("data_efficiency_imagenet", {})
    pn = [str(n) for n in sec.get("images_per_class", [])]
    variants = _axis(config, "variants", records)
    rows = []
    for n in _axis(config, "images_per_class", records):
        row = [str(n)]
        for v in variants:
            pk = _paper_key(config, v) or v
            pv = sec.get(pk)
            p = pv[pn.index(str(n))] if pv and str(n) in pn else None
            row += [fmt_paper(p, 2), fmt_ours(top1.get(key_of(images_per_class=n, variant=v)), 2)]
        rows.append(row)
    header = ["images per class"]
    for v in variants:
        header += [f"{v}: paper", f"{v}: ours"]
    return _md_table(header, rows)


TABLES = {
    "rook": rook_table,
    "red_green": red_green_table,
    "quadrant": quadrant_table,
    "shift_robustness": shift_robustness_table,
    "data_efficiency": data_efficiency_table,
}


# notes derived from the config (so they follow command-line overrides)
AUTO_NOTES = {"shift_robustness": shift_robustness_notes}


def table(experiment: str, records, config, paper) -> str:
    if experiment not in TABLES:
        raise ValueError(f"experiment must be one of {sorted(TABLES)}, got {experiment!r}")
    return TABLES[experiment](list(records), config, paper)


def results_markdown(experiment: str, records, config, paper, *, title: str | None = None,
                     notes: Sequence[str] = ()) -> str:
    """The whole ``results.md``: a title, the table and the notes (scale, data, caveats)."""
    parts = [f"# {title or experiment}", "",
             "Our numbers beside the paper's (Kayhan & van Gemert, CVPR 2020). Ours: mean ± "
             "population std over the seeds that ran (n). Accuracies in %.", "",
             table(experiment, records, config, paper), ""]
    parts += [f"- {n}" for n in list(notes) + list(AUTO_NOTES.get(experiment, lambda c: [])(config))]
    return "\n".join(parts).rstrip() + "\n"


# ----------------------------------------------------------------------------- plots
def _subplots(nrows=1, ncols=1, *, figsize, squeeze=True):
    """A figure drawn with matplotlib's object API (Agg canvas): no pyplot, no global backend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def plot(experiment: str, records, config, paper, outdir: str | Path) -> list[Path]:
    """Write the experiment's PNG plots into ``outdir``; returns their paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    records = list(records)
    fn = {"rook": _plot_rook, "red_green": _plot_red_green, "quadrant": _plot_quadrant,
          "shift_robustness": _plot_shift, "data_efficiency": _plot_data_eff}[experiment]
    return fn(records, config, paper, outdir)


def _legend(ax, size):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)


def _bars(ax, labels, series: dict[str, list[tuple[float, float] | None]], ylabel: str):
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, vals) in enumerate(series.items()):
        m = [v[0] if v else np.nan for v in vals]
        s = [v[1] if v else 0.0 for v in vals]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, m, width, yerr=s, capsize=3, label=name)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    _legend(ax, 8)


def _ms(vals):
    if not vals:
        return None
    m, s, _ = mean_std(vals)
    return (m, s)


def _plot_rook(records, config, paper, outdir):
    acc = group(records, "accuracy")
    vs = _axis(config, "variants", records)
    fig, ax = _subplots(figsize=(4, 3))
    _bars(ax, vs, {"ours": [_ms(acc.get(key_of(variant=v))) for v in vs]}, "accuracy (%)")
    ax.axhline(50, color="gray", ls=":", lw=1)
    ax.set_title("Rook (E0)")
    fig.tight_layout()
    p = outdir / "rook_accuracy.png"
    fig.savefig(p, dpi=100)
    return [p]


def _plot_red_green(records, config, paper, outdir):
    sim, dis = group(records, "similar"), group(records, "dissimilar")
    sec = paper.get("red_green", {})
    vs = _axis(config, "variants", records)
    fig, ax = _subplots(figsize=(7, 3.5))

    def paper_ms(split, v):
        pk = _paper_key(config, v)
        pv = sec.get(split, {}).get(pk) if pk else None
        return tuple(pv) if pv else None

    _bars(ax, vs, {
        "similar (ours)": [_ms(sim.get(key_of(variant=v))) for v in vs],
        "dissimilar (ours)": [_ms(dis.get(key_of(variant=v))) for v in vs],
        "similar (paper)": [paper_ms("similar_test", v) for v in vs],
        "dissimilar (paper)": [paper_ms("dissimilar_test", v) for v in vs],
    }, "test accuracy (%)")
    ax.set_title("Red-green (E2): similar vs dissimilar test sets")
    fig.tight_layout()
    p = outdir / "red_green_bars.png"
    fig.savefig(p, dpi=100)
    return [p]


def _plot_quadrant(records, config, paper, outdir):
    acc = group(records, "accuracy")
    sec = paper.get("quadrant_imagenet", {})
    archs, inits = _axis(config, "archs", records), _axis(config, "inits", records)
    vs, borders = _axis(config, "variants", records), _axis(config, "borders", records)
    fig, axes = _subplots(1, len(archs), figsize=(4.5 * len(archs), 3.5), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for i, init in enumerate(inits):
            color = f"C{i}"
            for j, v in enumerate(vs):
                ys = [_ms(acc.get(key_of(arch=arch, border=b, init=init, variant=v))) for b in borders]
                if any(y is not None for y in ys):
                    ax.plot(range(len(borders)), [y[0] if y else np.nan for y in ys],
                            marker="o", ls=["-", "--", "-."][j % 3], color=color,
                            label=f"ours {init} {v}")
            pvals = sec.get("accuracy_percent", {}).get(arch, {}).get(init)
            if pvals and any(_paper_key(config, v) for v in vs):
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
        _legend(ax, 7)
    fig.tight_layout()
    p = outdir / "quadrant_accuracy_vs_border.png"
    fig.savefig(p, dpi=100)
    return [p]


def _plot_shift(records, config, paper, outdir):
    paths = []
    archs, vs = _axis(config, "archs", records), _axis(config, "variants", records)
    # diagonal-shift curve: accuracy per offset (mean over seeds) per variant, one panel per arch
    curves: dict[tuple, list[np.ndarray]] = defaultdict(list)
    for r in records:
        c = r.get("metrics", {}).get("diagonal_curve")
        if c is not None:
            curves[(r["cell"].get("arch"), r["cell"].get("variant"))].append(np.asarray(c, float))
    fig, axes = _subplots(1, len(archs), figsize=(4.5 * len(archs), 3.5), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for v in vs:
            cs = curves.get((arch, v))
            if cs:
                ax.plot(np.mean(cs, axis=0), label=v)
        ax.set_xlabel("diagonal offset o (crop at (o, o))")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"diagonal shift: {arch}")
        _legend(ax, 8)
    fig.tight_layout()
    p = outdir / "shift_diagonal_curve.png"
    fig.savefig(p, dpi=100)
    paths.append(p)

    cons = group(records, "consistency")
    sec = paper.get("shift_robustness", {}).get("consistency", {})
    labels = [f"{a}/{v}" for a in archs for v in vs]
    fig, ax = _subplots(figsize=(max(5, 0.9 * len(labels)), 3.5))
    _bars(ax, labels, {
        "ours": [_ms(cons.get(key_of(arch=a, variant=v))) for a in archs for v in vs],
        "paper": [((sec.get(a, {}).get(_paper_key(config, v) or v)), 0.0)
                  if sec.get(a, {}).get(_paper_key(config, v) or v) is not None else None
                  for a in archs for v in vs],
    }, "consistency (%)")
    ax.set_title("crop consistency")
    fig.tight_layout()
    p = outdir / "shift_consistency_bars.png"
    fig.savefig(p, dpi=100)
    paths.append(p)
    return paths


def _plot_data_eff(records, config, paper, outdir):
    top1 = group(records, "top1")
    sec = paper.get("data_efficiency_imagenet", {})
    ns, vs = _axis(config, "images_per_class", records), _axis(config, "variants", records)
    fig, ax = _subplots(figsize=(5, 3.5))
    labels = [str(n) for n in ns]
    for i, v in enumerate(vs):
        ys = [_ms(top1.get(key_of(images_per_class=n, variant=v))) for n in ns]
        if any(y is not None for y in ys):
            ax.errorbar(range(len(ns)), [y[0] if y else np.nan for y in ys],
                        yerr=[y[1] if y else 0 for y in ys], marker="o", color=f"C{i}", label=f"ours {v}")
        pk = _paper_key(config, v) or v
        if sec.get(pk):
            pn = [str(n) for n in sec["images_per_class"]]
            xs = [labels.index(n) for n in pn if n in labels]
            ax.plot(xs, [sec[pk][pn.index(labels[x])] for x in xs], marker="x", ls=":",
                    color=f"C{i}", label=f"paper {pk}")
    ax.set_xticks(range(len(ns)), labels)
    ax.set_xlabel("training images per class")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("data efficiency (E4a)")
    _legend(ax, 8)
    fig.tight_layout()
    p = outdir / "data_efficiency_curve.png"
    fig.savefig(p, dpi=100)
    return [p]
