"""E5 action recognition: video top-1 per 3D ResNet and padding variant.

On UCF101 / HMDB51 our numbers sit beside the paper's (``paper_results.json`` section
``action_recognition``, the data set named by ``config.paper_dataset``). On another data set
(the ``cpu`` analog, moving shapes) ours come with the paired differences of ``config.pairs``
and their 95% t-intervals, and the paper's numbers get a table of their own, labelled as
another data set.
"""
from __future__ import annotations

from jaxeq.experiments.reports.common import (axis, bars, diff_table, fmt_ours, fmt_paper, group,
                                             key_of, md_table, ms, paper_key, save, subplots)

PAPER_SECTION = "action_recognition"
PAPER_DATASETS = ("ucf101", "hmdb51")
DEFAULT_HEADLINE = "video_top1_final"


def _headline(config) -> str:
    return str(config.get("headline", DEFAULT_HEADLINE) or DEFAULT_HEADLINE)


def _data_name(config) -> str:
    return str(dict(dict(config.get("train", {}) or {}).get("data", {}) or {}).get("name", ""))


def _paper(config, paper, arch: str, variant: str, dataset: str):
    sec = paper.get(PAPER_SECTION, {}).get(dataset, {})
    pk = paper_key(config, variant) or variant
    return sec.get(arch.replace("resnet3d_", "resnet"), {}).get(pk)


def table(records, config, paper) -> str:
    metric = _headline(config)
    values = group(records, metric)
    clips = group(records, metric.replace("video_", "clip_"))
    archs, variants = axis(config, "archs", records), axis(config, "variants", records)
    dataset = str(config.get("paper_dataset", "ucf101"))
    if _data_name(config) in PAPER_DATASETS:
        rows = [[a] + [c for v in variants for c in (
            fmt_paper(_paper(config, paper, a, v, dataset)),
            fmt_ours(values.get(key_of(arch=a, variant=v))))] for a in archs]
        header = ["model"] + [f"{v}: {w}" for v in variants for w in ("paper", "ours")]
        return f"Video top-1 (%) on {dataset}, {metric}:\n\n" + md_table(header, rows)
    rows = [[a, v, fmt_ours(values.get(key_of(arch=a, variant=v))),
             fmt_ours(clips.get(key_of(arch=a, variant=v)))] for a in archs for v in variants]
    out = md_table(["model", "variant", f"{metric} (ours)", "clip top-1 (ours)"], rows)
    pairs = [tuple(p) for p in (config.get("pairs", ()) or ())]
    if pairs:
        out += ("\n\nPaired differences over seeds (points; mean and 95% t-interval):\n\n"
                + diff_table(records, pairs, (metric,), [(a, {"arch": a}) for a in archs],
                             row_header="model"))
    return out + "\n\n" + paper_table(paper)


def paper_table(paper) -> str:
    """The paper's video top-1 (3D ResNets from scratch), labelled as another data set."""
    rows = []
    for ds in PAPER_DATASETS:
        for arch, vals in paper.get(PAPER_SECTION, {}).get(ds, {}).items():
            rows.append([ds, arch] + [fmt_paper(vals.get(v)) for v in ("same", "full",
                                                                        "full_temporal")])
    return ("The paper's numbers (UCF101 / HMDB51 split 1: ANOTHER data set, for the direction "
            "of the effect only):\n\n"
            + md_table(["data set", "model", "same", "full", "full_temporal"], rows))


def plot(records, config, paper, outdir):
    metric = _headline(config)
    values = group(records, metric)
    archs, variants = axis(config, "archs", records), axis(config, "variants", records)
    fig, ax = subplots(1, 1, figsize=(6, 3.5))
    series = {f"ours {v}": [ms(values.get(key_of(arch=a, variant=v))) for a in archs]
              for v in variants}
    if _data_name(config) in PAPER_DATASETS:
        ds = str(config.get("paper_dataset", "ucf101"))
        for v in variants:
            series[f"paper {v}"] = [(p, 0.0) if p is not None else None
                                    for p in (_paper(config, paper, a, v, ds) for a in archs)]
    bars(ax, archs, series, f"{metric} (%)")
    ax.set_title(f"E5 action recognition ({_data_name(config)})")
    return [save(fig, outdir, "action_recognition.png")]
