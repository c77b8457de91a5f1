"""E2 red-green: the paper's table (rows = border handling, similar and dissimilar
test sets) and a bar plot."""
from __future__ import annotations

from jaxeq.experiments.reports.common import (DASH, axis, bars, fmt_ours, fmt_paper, group,
                                             key_of, md_table, ms, paper_key, save, subplots)

PAPER_SECTION = "red_green"  # its numbers in paper_results.json


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


def table(records, config, paper) -> str:
    sim, dis = group(records, "similar"), group(records, "dissimilar")
    extras = [(label, group(records, f"similar_{s}"), group(records, f"dissimilar_{s}"))
              for s, label in _extra_pairs(records, config, "similar", "dissimilar")]
    sec = paper.get(PAPER_SECTION, {})
    rows = []
    for v in axis(config, "variants", records):
        pk = paper_key(config, v)
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
    return md_table(header, rows)


def plot(records, config, paper, outdir):
    sim, dis = group(records, "similar"), group(records, "dissimilar")
    sec = paper.get(PAPER_SECTION, {})
    vs = axis(config, "variants", records)
    fig, ax = subplots(figsize=(7, 3.5))

    def paper_ms(split, v):
        pk = paper_key(config, v)
        pv = sec.get(split, {}).get(pk) if pk else None
        return tuple(pv) if pv else None

    bars(ax, vs, {
        "similar (ours)": [ms(sim.get(key_of(variant=v))) for v in vs],
        "dissimilar (ours)": [ms(dis.get(key_of(variant=v))) for v in vs],
        "similar (paper)": [paper_ms("similar_test", v) for v in vs],
        "dissimilar (paper)": [paper_ms("dissimilar_test", v) for v in vs],
    }, "test accuracy (%)")
    ax.set_title("Red-green (E2): similar vs dissimilar test sets")
    p = save(fig, outdir, "red_green_bars.png")
    return [p]
