"""Position information in ResNet-18 per padding, at init and trained (issue #17, item 4).

``python -m jaxeq.experiments.position_probe --out DIR [--trained E3_WORKDIR]`` measures, with
:mod:`jaxeq.analysis.position`, how much absolute position the features of a ResNet-18 (width 16,
14 classes, the E3 CPU analog's net) carry for same-zero, full-zero, same-circular and
same-reflect padding at initialisation, and for the nets the E3 CPU analog trained
(``jaxeq run shift_robustness:cpu --workdir E3_WORKDIR``: same and full, seed 0, best
checkpoint) when ``--trained`` is given. Readouts are fitted on photo_id training crops and
scored on its test crops and on black, white and noise images (48x48, the E3 input size).
Writes ``results.json`` (rows, border reach, provenance), ``results.md`` and
``position_information.png`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


from jaxeq.analysis.probe import POSITION_TEST_SETS

SIZE = 48
GRID = 12
LAYERS = ("maxpool", "layer1_1", "layer2_1", "layer3_1", "layer4_1")
INIT_VARIANTS = (("same", "zeros"), ("full", "zeros"), ("same", "circular"), ("same", "reflect"))
TRAINED_VARIANTS = ("same", "full")  # the E3 CPU cells (zero fill)


def _feature_fn(model, variables):
    import jax
    from jaxeq.analysis.layerwise import _flax_features
    features = jax.jit(_flax_features(model, variables, {"train": False}))
    return lambda x: {k: v for k, v in features(x).items() if k in LAYERS}


def _init_net(padding: str, fill: str, seed: int):
    import jax
    import jax.numpy as jnp
    import jaxeq.models
    model = jaxeq.models.get("resnet18", padding=padding, fill=fill, num_classes=14, width=16)
    variables = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, SIZE, SIZE, 3)), train=False)
    return model, variables


def _trained_net(workdir: Path, variant: str):
    from jaxeq.experiments.evaluators.checkpoints import load_trained_cell
    cell = workdir / "cells" / variant / "resnet18" / "seed0"
    return load_trained_cell(cell, "best")


def study(trained_workdir: str | None, *, n_train: int = 10, n_test: int = 4, seed: int = 0,
          log=print) -> list[dict]:
    from jaxeq.analysis import position
    from jaxeq.analysis.probe import position_inputs, summarise_position
    train_x, tests = position_inputs(SIZE, n_train=n_train, n_test=n_test, seed=seed)
    nets = [(f"{p}-{f}", "init", lambda p=p, f=f: _init_net(p, f, seed)) for p, f in INIT_VARIANTS]
    if trained_workdir:
        nets += [(f"{v}-zeros", "trained (E3 cpu)",
                  lambda v=v: _trained_net(Path(trained_workdir), v)) for v in TRAINED_VARIANTS]
    out = []
    for name, state, build in nets:
        t0 = time.perf_counter()
        fn = _feature_fn(*build())
        rows = position.position_information(fn, train_x, tests, layers=LAYERS, grid=GRID)
        reach = position.border_reach(fn, train_x, tests["photos"], layers=LAYERS, grid=GRID)
        out.append({"net": name, "state": state, "summary": summarise_position(rows), "rows": rows,
                    "border_reach": reach})
        log(f"{name} ({state}): " + ", ".join(
            f"{t} SPC {s['spc']:.2f}" for t, s in out[-1]["summary"].items())
            + f" [{time.perf_counter() - t0:.0f} s]")
    return out


def markdown(results: list[dict]) -> str:
    head = ("| net | weights | " + " | ".join(f"{t} SPC / MAE" for t in POSITION_TEST_SETS)
            + " |")
    lines = [head, "|" + "---|" * (2 + len(POSITION_TEST_SETS))]
    for r in results:
        cells = [f"{r['summary'][t]['spc']:.2f} / {r['summary'][t]['mae']:.3f}"
                 for t in POSITION_TEST_SETS]
        lines.append(f"| {r['net']} | {r['state']} | " + " | ".join(cells) + " |")
    lines += ["", "Border reach (input pixels from the edge up to which the readout's MAE on "
              "the gradient targets stays below half of chance, on test photos; 0 = not even "
              "the outermost band):", "",
              "| net | weights | " + " | ".join(LAYERS) + " |", "|" + "---|" * (2 + len(LAYERS))]
    for r in results:
        reach = {b["layer"]: b["reach"] for b in r["border_reach"]}
        lines.append(f"| {r['net']} | {r['state']} | "
                     + " | ".join(f"{reach[k]:g}" for k in LAYERS) + " |")
    return "\n".join(lines) + "\n"


def _rounded(tree, digits: int = 4):
    """Floats rounded to ``digits`` places: the committed file stays small."""
    if isinstance(tree, float):
        return round(tree, digits)
    if isinstance(tree, dict):
        return {k: _rounded(v, digits) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_rounded(v, digits) for v in tree]
    return tree


def main(argv: list[str] | None = None) -> int:
    from jaxeq import atomic
    from jaxeq.analysis.probe_render import plot_position
    from jaxeq.experiments.provenance import provenance
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for results.json, results.md, the PNG")
    p.add_argument("--trained", default=None,
                   help="workdir of `jaxeq run shift_robustness:cpu` (adds its trained nets)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    results = study(args.trained, seed=args.seed)
    record = {"experiment": "position_information", "size": SIZE, "grid": GRID,
              "layers": list(LAYERS), "results": results,
              "wall_s": round(time.time() - t0, 1),
              "provenance": provenance(["python", "-m", "jaxeq.experiments.position_probe",
                                        *(sys.argv[1:] if argv is None else argv)])}
    record = _rounded(record)  # results.md renders from exactly what results.json holds
    atomic.write_json(out / "results.json", record)
    atomic.write_text(out / "results.md", markdown(record["results"]))
    plot_position({f"{r['net']} ({r['state']})": r["summary"] for r in results},
                  out / "position_information.png")
    print(json.dumps({r["net"] + "/" + r["state"]: r["summary"] for r in results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
