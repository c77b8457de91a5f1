"""Render ``jaxeq bench --json`` output as the tables of BENCHMARKS.md.

    python scripts/bench_to_md.py bench.json [more.json ...] [--out BENCHMARKS.md]

The generated part sits between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``; text
outside the markers (notes written by hand) is kept. Without an existing file, only the
generated part is written.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import OrderedDict

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _ms(r, side):
    med = r.get(f"{side}_median_s")
    if med is None:
        return "-"
    return (f"{med * 1e3:.1f} ({r[f'{side}_min_s'] * 1e3:.1f}-"
            f"{r[f'{side}_max_s'] * 1e3:.1f})")


def _agree(r):
    if r.get("agree") is None:
        return "-"
    rel = r.get("max_rel_diff")
    return f"{'yes' if r['agree'] else 'NO'} ({rel:.1e})" if rel is not None else str(r["agree"])


def _throughput(r):
    ex = r.get("extra") or {}
    if not ex.get("flops") or r.get("jaxeq_median_s") is None:
        return ""
    gf = ex["flops"] / r["jaxeq_median_s"] / 1e9
    s = f"{gf:.0f} GFLOP/s"
    if ex.get("matmul_peak_gflops"):
        s += f", {100 * gf / ex['matmul_peak_gflops']:.0f}% of peak"
    if ex.get("batch"):
        s += (f"; img/s {ex['batch'] / r['jaxeq_median_s']:.1f} vs "
              f"{ex['batch'] / r['torch_median_s']:.1f}")
    return s


def table(rows):
    out = ["| row | baseline | jaxeq ms median (min-max) | baseline ms median (min-max) | "
           "speedup | agree (max rel diff) | notes |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("skipped"):
            out.append(f"| `{r['row']}` | {r['torch_variant']} | - | - | - | - | "
                       f"skipped: {r['skipped']} |")
            continue
        if r.get("jaxeq_median_s") is None:  # informational row (no counterpart)
            ex = ", ".join(f"{k}={v}" for k, v in (r.get("extra") or {}).items())
            out.append(f"| `{r['row']}` | {r['torch_variant']} | - | - | - | - | {ex} |")
            continue
        sp = f"**{r['speedup']:.2f}**" if r["speedup"] >= 1 else f"{r['speedup']:.2f}"
        out.append(f"| `{r['row']}` | {r['torch_variant']} | {_ms(r, 'jaxeq')} | "
                   f"{_ms(r, 'torch')} | {sp} | {_agree(r)} | {_throughput(r)} |")
    return "\n".join(out)


def conv_ratios(rows):
    """full/same forward+backward time ratio per fill (target <= 1.5)."""
    by = {}
    for r in rows:
        ex = r.get("extra") or {}
        if r["group"] == "conv" and ex.get("kind") == "fwdbwd" and r.get("jaxeq_median_s"):
            by[(ex["padding"], ex["fill"])] = r["jaxeq_median_s"]
    lines = []
    for fill in ("zeros", "circular", "reflect", "replicate"):
        if ("full", fill) in by and ("same", fill) in by:
            lines.append(f"- {fill}: full/same fwd+bwd = "
                         f"{by[('full', fill)] / by[('same', fill)]:.2f} (target <= 1.5)")
    return "\n".join(lines)


def render(rows):
    groups = OrderedDict()
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    m = rows[0].get("machine", {}) if rows else {}
    cmds = sorted({r.get("command") for r in rows if r.get("command")})
    parts = [BEGIN, "## Generated tables", "",
             "Commands: " + ", ".join(f"`{c}`" for c in cmds), "",
             f"Machine: {m.get('cpu_model')} ({m.get('cpus_usable')} usable cores), "
             f"{m.get('platform')}; Python {m.get('python')}, jax {m.get('jax')}, "
             f"jaxlib {m.get('jaxlib')}, torch {m.get('torch')} "
             f"(threads {m.get('torch_num_threads')}, interop "
             f"{m.get('torch_num_interop_threads')}); backend {m.get('jax_backend')}; "
             f"XLA_FLAGS=`{m.get('XLA_FLAGS')}`; load average at start "
             f"{m.get('load_average')}, at end {m.get('load_average_end')}.", "",
             "speedup = baseline median / jaxeq median (> 1: jaxeq faster). Times are per call "
             "(per step for train rows). agree: outputs compared before timing "
             "(max|a-b| <= rtol * max|b|).", ""]
    for g, rs in groups.items():
        parts += [f"### {g}", "", table(rs), ""]
        if g == "conv":
            ratios = conv_ratios(rs)
            if ratios:
                parts += [ratios, ""]
        sp = [r["speedup"] for r in rs if r.get("speedup")]
        if sp:
            parts += [f"Median speedup over the {len(sp)} timed {g} rows: "
                      f"{statistics.median(sp):.2f}", ""]
    parts.append(END)
    return "\n".join(parts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="+")
    p.add_argument("--out", default="BENCHMARKS.md")
    a = p.parse_args(argv)
    rows = []
    for path in a.json:
        with open(path) as f:
            rows.extend(json.load(f))
    gen = render(rows)
    try:
        with open(a.out) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + gen + old[old.index(END) + len(END):]
    else:
        new = (old.rstrip() + "\n\n" if old else "") + gen + "\n"
    with open(a.out, "w") as f:
        f.write(new)
    print(f"wrote {a.out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
