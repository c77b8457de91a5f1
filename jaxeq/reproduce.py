"""``jaxeq reproduce --quick [--workdir DIR]``: the paper's findings on a laptop CPU, in minutes.

Runs, each into its own folder under the workdir (re-running resumes: finished cells are kept):

1. E0 rook: same-zero vs full-zero, 5 seeds (the paper's protocol; it is tiny);
2. E2 red-green: valid, same-zero, same-circular (pad 1: the paper's "circular" row),
   full-circular (pad 2 per side: what today's PyTorch makes of the official code's
   ``padding=2``), full-zero, same-reflect; 3 seeds, fewer epochs;
3. E1 quadrant on the embedded photographs (scikit-image's sample photos, NOT ImageNet):
   ResNet-18 as the paper's 4QI net (global max pool, stem max-pool k2 s2 p1) scratch and
   random_frozen, standard (same-zero) vs full-zero, borders 0/16/32, small splits, tested on
   disjoint images and on the training images (the paper's measurement);
4. a layer-by-layer equivariance table of ResNet-18 (``jq.layerwise_equivariance``): same-zero,
   full-zero and same-circular at initialisation, and the trained full-zero quadrant net, for
   translations of content on a zero canvas.

Sized to finish in under 15 minutes on 2 CPU cores (the sizes are printed and written into each
results.md); the full protocols are ``jaxeq run experiments/<name>.py`` (see experiments/).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from jaxeq import experiments_runner as runner

# what --quick runs: (experiment file, variant, config overrides)
QUICK_PLAN = (
    ("rook", "quick", ()),
    ("red_green", "quick", ("--config.seeds=(0,1,2)",)),
    # ResNet-18 only: a BagNet-33 cell costs ~8x a ResNet-18 one (experiments/quadrant.py)
    ("quadrant", "quick", ("--config.archs=('resnet18',)",)),
)


def experiments_dir() -> Path:
    """The experiments/ folder of the source checkout (configs live beside the package)."""
    d = Path(__file__).resolve().parents[1] / "experiments"
    if not d.is_dir():
        raise FileNotFoundError(f"experiments/ not found at {d}: run from a source checkout of jaxeq")
    return d


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="CPU-sized runs (under 15 min on 2 cores); the only mode so far")
    parser.add_argument("--workdir", default="runs/reproduce_quick", help="output folder (resumable)")
    parser.add_argument("--only", nargs="*", default=None,
                        choices=[p[0] for p in QUICK_PLAN] + ["layerwise"],
                        help="run only these parts")


def _summary(config) -> str:
    t = config.train
    cells = runner.cells(config)
    return (f"{len(cells)} cells; {t.model.name}; epochs <= {t.epochs}, batch {t.batch_size}; "
            f"data {t.data.name} {dict(t.data.kwargs) or ''}")


def layerwise_table(trained_workdir: str | None = None, *, size: int = 128, content: int = 32,
                    shifts=((8, 8), (16, 0), (0, -16), (32, 32)), seed: int = 0) -> str:
    """Markdown: per ResNet-18 stage, max relative error of its output under translation.

    Input: random content (``content`` x ``content``) in the middle of a zero ``size`` canvas,
    moved by ``shifts`` with zero fill (it stays inside the canvas). Each layer is compared only
    on the shifts in its stride subgroup (``jq.layerwise_equivariance``).
    """
    import jax

    import jaxeq as jq
    from jaxeq import models

    if not hasattr(jq, "layerwise_equivariance"):
        return "(jq.layerwise_equivariance is not available in this build)"
    x = np.zeros((1, size, size, 3), np.float32)
    o = (size - content) // 2
    x[0, o:o + content, o:o + content] = np.random.default_rng(seed).normal(size=(content, content, 3))
    shifts = np.asarray(shifts, np.int32)
    columns = []
    # the paper's 4QI ResNet-18: 2-way head, global max pool, stem max-pool k2 s2 p1
    kw = dict(num_classes=2, global_pool="max", stem_pool_kernel=2, stem_pool_padding=1)
    for label, padding, fill in (("same_zero init", "same", "zeros"),
                                 ("full_zero init", "full", "zeros"),
                                 ("same_circular init", "same", "circular")):
        model = models.get("resnet18", padding=padding, fill=fill, **kw)
        variables = model.init(jax.random.PRNGKey(seed), x, train=False)
        columns.append((label, jq.layerwise_equivariance(model, variables, x, shifts, action="translate")))
    if trained_workdir and os.path.isdir(trained_workdir):
        try:
            # the model exactly as that cell trained it (its recorded config)
            with open(os.path.join(trained_workdir, "config.json")) as f:
                trained_cfg = runner.ml_collections.ConfigDict(json.load(f))
            model, variables = runner._load_trained(trained_cfg, trained_workdir)
            columns.append(("full_zero trained (4QI)",
                            jq.layerwise_equivariance(model, variables, x, shifts, action="translate")))
        except Exception as e:  # noqa: BLE001 - the table is still useful without this column
            columns.append((f"full_zero trained: unavailable ({type(e).__name__})", []))
    return _layerwise_markdown(columns)


def _keep_row(path: str) -> bool:
    """Stage-level rows only (block outputs, stem, pooled output): one line per stage."""
    return "/" not in path


def _layerwise_markdown(columns) -> str:
    paths, info = [], {}
    for _, rows in columns:
        for r in rows:
            if _keep_row(r["path"]) and r["path"] not in info:
                paths.append(r["path"])
                info[r["path"]] = r
    header = ["layer output", "stride"] + [c[0] for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in paths:
        cells = []
        for _, rows in columns:
            r = next((r for r in rows if r["path"] == p), None)
            if r is None or r.get("kind") == "skipped" or r.get("max") is None:
                cells.append("–")
            else:
                cells.append(f"{r['max']:.1e}")
        stride = info[p].get("stride")
        lines.append(f"| {p} | {stride if stride is not None else '–'} | " + " | ".join(cells) + " |")
    lines += ["", "Rows with a stride compare each map with the reference map translated by "
              "shift / stride, over the shifts that are multiples of the stride; rows without "
              "(head, output) are invariance errors over all the shifts, including those outside "
              "the total stride's subgroup (32), where no invariance is expected."]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if not args.quick:
        print("Only --quick is implemented here; the full protocols are\n"
              "  jaxeq run experiments/<name>.py --workdir DIR   (see experiments/*.py docstrings)")
        return 2
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    from jaxeq import xla_env
    xla_env.enable_compilation_cache(root / ".xla_cache")  # seeds 2.. of a cell reuse the programs
    exp = experiments_dir()
    t_all = time.perf_counter()
    printed = []
    for name, variant, overrides in QUICK_PLAN:
        if args.only is not None and name not in args.only:
            continue
        config = runner.load_config(f"{exp / name}.py:{variant}", overrides)
        print(f"\n=== {config.title} [{variant}: {_summary(config)}]", flush=True)
        t0 = time.perf_counter()
        out = runner.run(config, root / name, log=lambda s: print("  " + s, flush=True))
        dt = time.perf_counter() - t0
        printed.append((name, out, dt))
        print(out["markdown"])
        print(f"({dt:.0f} s) results: {out['results']}; plots: {', '.join(map(str, out['plots']))}")
    if args.only is None or "layerwise" in args.only:
        print("\n=== Layer-by-layer equivariance, ResNet-18 (2-way head, global max pool), 32x32 "
              "random content on a 128x128 zero canvas translated by (8,8), (16,0), (0,-16), (32,32) "
              "with zero fill; max relative error per stage output", flush=True)
        t0 = time.perf_counter()
        trained = root / "quadrant" / "cells" / "full_zero" / "resnet18" / "scratch" / "border0" / "seed1988"
        md = layerwise_table(str(trained))
        (root / "layerwise.md").write_text(md + "\n")
        print(md)
        print(f"({time.perf_counter() - t0:.0f} s) table: {root / 'layerwise.md'}")
    print(f"\nreproduce --quick finished in {time.perf_counter() - t_all:.0f} s; everything is under {root}/")
    return 0
