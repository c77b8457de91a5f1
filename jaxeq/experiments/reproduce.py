"""What ``jaxeq reproduce --quick`` runs: the paper's findings at CPU size.

Runs, each into its own folder under the workdir (re-running resumes: finished cells are kept):

1. E0 rook: same-zero vs full-zero, 5 seeds (the paper's protocol; it is tiny);
2. E2 red-green: valid, same-zero, same-circular (pad 1: the paper's "circular" row),
   full-circular (pad 2 per side: what today's PyTorch makes of the official code's
   ``padding=2``), full-zero, same-reflect; 2 seeds, fewer epochs;
3. E1 quadrant on the embedded photographs (scikit-image's sample photos, NOT ImageNet):
   ResNet-18 as the paper's 4QI net (global max pool, stem max-pool k2 s2 p1) trained from
   scratch, standard (same-zero) vs full-zero, borders 0/16/32, small splits, tested on
   disjoint images and on the training images (the paper's measurement);
4. E3 shift robustness and E4a data efficiency on ``photo_id`` (which of 14 photographs a crop
   comes from; the label does not depend on position): same vs full ResNet-18 (width 16), one
   seed; E4a at 10 and 100 training crops per class (``jaxeq run shift_robustness:cpu`` /
   ``data_efficiency:cpu`` run all variants and seeds);
5. a layer-by-layer equivariance table of ResNet-18 (``jq.layerwise_equivariance``): same-zero,
   full-zero and same-circular at initialisation, and the trained full-zero quadrant net, for
   translations of content on a zero canvas.

Only when named with ``--only``: the E4b patch-matching and E5 action-recognition analogs
(``patch_matching:cpu``, ``action_recognition:cpu``), each longer than all of the above.

Sized for a laptop CPU (the sizes are printed and written into each results.md); the full
protocols are ``jaxeq run NAME`` (see :mod:`jaxeq.experiments.configs`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from jaxeq.experiments import cells, load_config, load_trained_cell, prepare, run
from jaxeq.experiments.grid import CELL_FILE, cell_dir

# what --quick runs: (experiment name, variant, config overrides)
QUICK_PLAN = (
    ("rook", "quick", ()),
    ("red_green", "quick", ("--config.seeds=(0,1)",)),
    # ResNet-18 only: a BagNet-33 cell costs ~8x a ResNet-18 one (configs/quadrant.py);
    # scratch only: a head trained for 18 steps on a frozen random net stays at chance
    # (results/e1_quadrant_quick_resnet18), so those cells cost minutes and show nothing;
    # `jaxeq run quadrant:cpu` runs both inits and both archs
    ("quadrant", "quick", ("--config.archs=('resnet18',)", "--config.inits=('scratch',)")),
    # the E3 / E4a analogs on photographs (label independent of position), one seed each;
    # the `cpu` variants run every variant with 3 / 5 seeds and give the intervals
    ("shift_robustness", "cpu", ("--config.variants=('same','full')", "--config.seeds=(0,)")),
    ("data_efficiency", "cpu", ("--config.images_per_class=(10,100)", "--config.seeds=(0,)")),
)
# E4b and E5 CPU analogs: run only when named (--only), each longer than the rest together
# (their wall times: RESULTS.md); the same as `jaxeq run NAME:cpu`
NAMED_ONLY_PLAN = (
    ("patch_matching", "cpu", ()),
    ("action_recognition", "cpu", ()),
)
PARTS = tuple(p[0] for p in QUICK_PLAN) + ("layerwise",) + tuple(p[0] for p in NAMED_ONLY_PLAN)
# the quadrant cell whose trained net gets a column in the layer-by-layer table
TRAINED_CELL = {"variant": "full_zero", "arch": "resnet18", "init": "scratch", "border": 0}


def _summary(config) -> str:
    t = config.train
    # classifier configs keep data settings in data.kwargs, patch matching's in data itself
    data = t.data.get("kwargs")
    if data is None:
        data = {k: v for k, v in t.data.items() if k != "name" and v not in ("", None)}
    return (f"{len(cells(config))} cells; {t.model.name}; epochs <= {t.epochs}, batch {t.batch_size}; "
            f"data {t.data.name} {dict(data) or ''}")


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
    note = ""
    if trained_workdir is not None:
        label = "full_zero trained (4QI)"
        if load_trained_cell_ready(trained_workdir):
            # the model exactly as that cell trained it (its recorded config)
            model, variables = load_trained_cell(trained_workdir)
            columns.append((label, jq.layerwise_equivariance(model, variables, x, shifts,
                                                             action="translate")))
        else:
            columns.append((f"{label}: not trained", []))
            note = (f"\n\nThe trained column is empty: {trained_workdir} holds no finished "
                    f"quadrant cell. Train it with `jaxeq reproduce --quick --only quadrant "
                    f"layerwise` (same --workdir), then this table gets its numbers.")
    return _layerwise_markdown(columns) + note


def load_trained_cell_ready(cell_workdir: str) -> bool:
    """Whether ``cell_workdir`` holds a finished cell (its record written after training)."""
    return (Path(cell_workdir) / CELL_FILE).is_file()


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


def trained_cell_dir(root: Path, quadrant_config) -> Path:
    """The folder of :data:`TRAINED_CELL` (its first seed) in the quadrant run under ``root``."""
    cell = next(c for c in cells(quadrant_config)
                if all(c["cell"].get(k) == v for k, v in TRAINED_CELL.items()))
    return cell_dir(root / "quadrant", cell["name"])


def run_quick(root: Path, only=None, log: Callable[[str], None] = print) -> None:
    """Every part of :data:`QUICK_PLAN` (or those in ``only``, which may also name the parts of
    :data:`NAMED_ONLY_PLAN`), then the layer-by-layer table, each into its own folder under
    ``root``; finished cells are kept, so a rerun resumes."""
    if only is not None and (not only or any(p not in PARTS for p in only)):
        raise ValueError(f"only (--only) must name at least one of {', '.join(PARTS)}; got "
                         f"{' '.join(map(str, only)) or 'none'}")
    t_all = time.perf_counter()
    plan = QUICK_PLAN + tuple(p for p in NAMED_ONLY_PLAN if only is not None and p[0] in only)
    loaded = {name: load_config(f"{name}:{variant}", overrides) for name, variant, overrides in plan}
    chosen = [(name, variant) for name, variant, _ in plan if only is None or name in only]
    for name, _ in chosen:  # every part's cells checked before the first one trains
        prepare(loaded[name], root / name)
    for name, variant in chosen:
        config = loaded[name]
        log(f"\n=== {config.title} [{variant}: {_summary(config)}]")
        t0 = time.perf_counter()
        out = run(config, root / name, log=lambda s: log("  " + s))
        log(out["markdown"])
        log(f"({time.perf_counter() - t0:.0f} s) results: {out['results']}; "
            f"plots: {', '.join(map(str, out['plots']))}")
    if only is None or "layerwise" in only:
        log("\n=== Layer-by-layer equivariance, ResNet-18 (2-way head, global max pool), 32x32 "
            "random content on a 128x128 zero canvas translated by (8,8), (16,0), (0,-16), (32,32) "
            "with zero fill; max relative error per stage output")
        t0 = time.perf_counter()
        md = layerwise_table(str(trained_cell_dir(root, loaded["quadrant"])))
        if "not trained" in md.splitlines()[0]:
            log("  (the quadrant part has not trained its full_zero cell in this workdir: the "
                "trained column stays empty; see the line under the table)")
        (root / "layerwise.md").write_text(md + "\n")
        log(md)
        log(f"({time.perf_counter() - t0:.0f} s) table: {root / 'layerwise.md'}")
    log(f"\nreproduce --quick finished in {time.perf_counter() - t_all:.0f} s; everything is under {root}/")
