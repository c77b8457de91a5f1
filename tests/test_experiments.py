"""Experiments: config files, the cell runner, results tables/plots, and CI smoke runs.

The table tests feed given numbers (fake records) through the report code: they test the layout
and the aggregation, not any result. The smoke tests run each experiment's smallest variant (and
the full-protocol configs of E1/E3/E4a on ``tfds.testing.mock_data``) for a few steps.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from jaxeq import experiments_runner as runner
from jaxeq import report

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
NAMES = ("rook", "red_green", "quadrant", "shift_robustness", "data_efficiency")


def _load(name, variant=None, overrides=()):
    spec = str(EXP / f"{name}.py") + (f":{variant}" if variant else "")
    return runner.load_config(spec, overrides)


# ----------------------------------------------------------------------------- configs and cells
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("variant", ["quick", None])
def test_configs_load_and_expand(name, variant):
    config = _load(name, variant)
    assert config.experiment == name
    assert config.variant == (variant or "full")
    cells = runner.cells(config)
    assert cells and len({c["name"] for c in cells}) == len(cells)
    for cell in cells:
        cfg, split_kwargs = runner.cell_settings(config, cell["cell"])
        if "variant" in cell["cell"] and "padding" in dict(config.variant_defs[cell["cell"]["variant"]]["model"]["kwargs"]):
            want = config.variant_defs[cell["cell"]["variant"]].model.kwargs.padding
            assert cfg.model.kwargs.padding == want
        if "seed" in cell["cell"]:
            assert cfg.seed == cell["cell"]["seed"]
        if "border" in cell["cell"]:
            assert cfg.data.kwargs.border == cell["cell"]["border"]
        if "arch" in cell["cell"]:
            assert cfg.model.name == cell["cell"]["arch"]
    # the docstring names a runnable command
    assert f"jaxeq run experiments/{name}.py" in (EXP / f"{name}.py").read_text()


def test_red_green_protocol_fields():
    full = _load("red_green")
    t = full.train
    assert (t.optimizer.name, t.optimizer.lr, t.optimizer.rho, t.optimizer.eps) == ("adadelta", 1.0, 0.9, 1e-6)
    assert (t.optimizer.weight_decay, t.batch_size, t.epochs, t.early_stopping_patience) == (5e-5, 200, 50, 8)
    assert len(full.seeds) == 10 and len(runner.cells(full)) == 60
    # circular pad 2 per side and pad 1 (the paper's row) are different cells
    assert full.variant_defs.full_circular.model.kwargs.padding == "full"
    assert full.variant_defs.same_circular.model.kwargs.padding == "same"


def test_unknown_variant_and_bad_spec():
    with pytest.raises(ValueError, match="variant must be one of"):
        _load("rook", "huge")
    with pytest.raises(ValueError, match="experiments/<name>.py"):
        runner.load_config("experiments/nope.py")


def test_overrides_typed_and_typos_rejected():
    c = _load("red_green", "quick", ["--config.seeds=(4,5)", "--config.train.epochs=3",
                                      "--config.train.model.kwargs.dtype=float32"])
    assert tuple(c.seeds) == (4, 5) and c.train.epochs == 3
    assert c.train.model.kwargs.dtype == "float32"
    assert [cell["cell"]["seed"] for cell in runner.cells(c)][:2] == [4, 5]
    with pytest.raises(ValueError, match="unknown config key"):
        _load("red_green", "quick", ["--config.train.epohcs=3"])
    with pytest.raises(TypeError):
        _load("red_green", "quick", ["--config.train.epochs=many"])


def test_cli_parses_config_overrides():
    import argparse

    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    runner.add_arguments(sub.add_parser("run"))
    args = p.parse_args(["run", "experiments/rook.py:quick", "--workdir", "w",
                         "--config.seeds=(0,)", "--config.train.epochs", "2"])
    assert args.config == "experiments/rook.py:quick" and args.workdir == "w"
    assert args.config_overrides == ["--config.seeds=(0,)", "--config.train.epochs=2"]


# ----------------------------------------------------------------------------- tables from given numbers
def _rg_records():
    recs = []
    fake = {"valid": (99.0, 1.0), "same_zero": (98.0, 10.0), "full_zero": (90.0, 88.0)}
    for v, (s, d) in fake.items():
        for seed, delta in enumerate((-1.0, 0.0, 1.0)):
            recs.append({"name": f"{v}/seed{seed}", "cell": {"variant": v, "seed": seed},
                         "metrics": {"similar": s + delta, "dissimilar": d + delta}})
    return recs


def test_red_green_table_layout_and_stats():
    config = _load("red_green").to_dict()
    paper = report.load_paper_results()
    md = report.table("red_green", _rg_records(), config, paper)
    lines = md.splitlines()
    assert lines[0].startswith("| variant | similar: paper | similar: ours | dissimilar: paper")
    rows = {l.split("|")[1].strip().split(" ")[0]: [c.strip() for c in l.split("|")[2:-1]] for l in lines[2:]}
    std = float(np.std([-1.0, 0.0, 1.0]))  # population std, as documented
    assert rows["same_zero"] == ["99.8 ± 0.1", f"98.0 ± {std:.1f} (n=3)", "8.4 ± 0.7", f"10.0 ± {std:.1f} (n=3)"]
    assert rows["full_zero"][0] == "89.7 ± 0.5" and rows["full_zero"][2] == "89.7 ± 0.5"
    # pad-2 circular is labelled with the paper row it stands beside; cells that did not run say so
    assert "full_circular (paper row: same_circular)" in md
    assert rows["full_circular"] == ["73.7 ± 1.0", "not run", "73.7 ± 1.0", "not run"]
    assert rows["same_reflect"][0] == "–"


def test_quadrant_and_rook_tables_from_given_numbers():
    paper = report.load_paper_results()
    config = _load("quadrant", "quick").to_dict()
    recs = [{"name": "x", "cell": {"variant": v, "arch": "resnet18", "init": "scratch", "border": b,
                                   "seed": 1988}, "metrics": {"accuracy": acc}}
            for v, b, acc in [("same_zero", 0, 97.5), ("same_zero", 16, 88.0), ("full_zero", 0, 51.0)]]
    md = report.table("quadrant", recs, config, paper)
    header, _, *rows = md.splitlines()
    assert "border 0: ours / paper" in header and "border 32: ours / paper" in header
    same = next(r for r in rows if "| scratch | same_zero |" in r)
    assert "97.5 / 100.0" in same and "88.0 / 100.0" in same and "not run / 100.0" in same
    full = next(r for r in rows if "| scratch | full_zero |" in r)
    assert "51.0 / –" in full  # the paper ran standard (same-zero) nets only
    frozen = next(r for r in rows if "| random_frozen | same_zero |" in r)
    assert "not run / 99.7" in frozen and "not run / 99.7" in frozen

    rook = _load("rook").to_dict()
    recs = [{"name": "n", "cell": {"variant": "same_zero", "seed": s}, "metrics": {"accuracy": 100.0}}
            for s in range(5)]
    recs += [{"name": "n", "cell": {"variant": "full_zero", "seed": s}, "metrics": {"accuracy": 50.0}}
             for s in range(5)]
    md = report.table("rook", recs, rook, paper)
    assert "| same_zero | 100.0 | 100.0 ± 0.0 (n=5) | 5/5 |" in md
    assert "| full_zero | – | 50.0 ± 0.0 (n=5) | 0/5 |" in md


def test_shift_and_data_efficiency_tables_and_plots(tmp_path):
    paper = report.load_paper_results()
    cfg = _load("shift_robustness").to_dict()
    recs = [{"name": "n", "cell": {"arch": "resnet50", "variant": "full", "seed": 0},
             "metrics": {"top1": 70.0, "diagonal": 69.0, "consistency": 91.0,
                         "diagonal_curve": list(np.linspace(70, 68, 65))}}]
    md = report.table("shift_robustness", recs, cfg, paper)
    row = next(r for r in md.splitlines() if "| resnet50 | full |" in r)
    assert "87.92" in row and "69.00" in row and "91.36" in row and "91.00" in row
    plots = report.plot("shift_robustness", recs, cfg, paper, tmp_path)
    assert {p.name for p in plots} == {"shift_diagonal_curve.png", "shift_consistency_bars.png"}

    cfg = _load("data_efficiency").to_dict()
    recs = [{"name": "n", "cell": {"variant": "same", "images_per_class": 50, "seed": 0},
             "metrics": {"top1": 20.0}}]
    md = report.table("data_efficiency", recs, cfg, paper)
    row = next(r for r in md.splitlines() if r.startswith("| 50 |"))
    assert row == "| 50 | 26.39 | 20.00 | 31.16 | not run |"
    for p in report.plot("data_efficiency", recs, cfg, paper, tmp_path):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- runner with a stand-in trainer
def test_runner_resumes_and_writes_outputs(tmp_path):
    """The runner's bookkeeping with a stand-in for jaxeq.train.fit (numbers are given, not trained)."""
    config = _load("red_green", "quick", ["--config.seeds=(0,1)"])
    calls = []

    def fake_fit(cfg, workdir):
        calls.append(workdir)
        pad = cfg.model.kwargs.padding
        return {"test": {"test": {"accuracy": 0.9 if pad != "full" else 0.8},
                         "test_dissimilar": {"accuracy": 0.1 if pad != "full" else 0.8}},
                "epochs_run": 3}

    out = runner.run(config, tmp_path, fit=fake_fit, log=lambda s: None)
    assert len(calls) == 12 and len(set(calls)) == 12
    res = json.loads((tmp_path / "results.json").read_text())
    assert len(res["records"]) == 12 and res["experiment"] == "red_green"
    md = (tmp_path / "results.md").read_text()
    assert "| full_zero | 89.7 ± 0.5 | 80.0 ± 0.0 (n=2) | 89.7 ± 0.5 | 80.0 ± 0.0 (n=2) |" in md
    assert (tmp_path / "red_green_bars.png").is_file() and out["plots"]
    # second run: every cell is finished, nothing is trained again
    runner.run(config, tmp_path, fit=fake_fit, log=lambda s: None)
    assert len(calls) == 12


# ----------------------------------------------------------------------------- CI smoke runs (real training)
def _smoke(name, variant, overrides, tmp_path):
    config = _load(name, variant, ["--config.train.max_steps=2", "--config.train.epochs=1",
                                   "--config.train.progress='off'", *overrides])
    out = runner.run(config, tmp_path / name, log=lambda s: None)
    assert out["records"] and (tmp_path / name / "results.md").is_file()
    for rec in out["records"]:
        for k, v in rec["metrics"].items():
            if k != "diagonal_curve":
                assert v is not None and 0.0 <= v <= 100.0, (k, v)
    return out


SMALLEST = {  # each experiment's smallest variant, cut to one or two cells and tiny data
    "rook": ["--config.seeds=(0,)"],
    "red_green": ["--config.seeds=(0,)", "--config.variants=('same_zero','full_zero')",
                  "--config.train.data.kwargs.size=40", "--config.train.batch_size=20",
                  "--config.train.eval_batch_size=40"],
    "quadrant": ["--config.variants=('full_zero',)", "--config.inits=('random_frozen',)",
                 "--config.borders=(0,)", "--config.train.data.kwargs.per_split=2",
                 "--config.train.batch_size=2", "--config.train.eval_batch_size=4"],
    "shift_robustness": ["--config.variants=('full',)", "--config.train.data.kwargs.size=8",
                         "--config.train.batch_size=4", "--config.train.eval_batch_size=8",
                         "--config.eval.max_images=4", "--config.eval.passes=1"],
    "data_efficiency": ["--config.seeds=(0,)", "--config.images_per_class=(10,)",
                        "--config.variants=('full_zero',)"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_smallest_variant_smoke(name, tmp_path):
    out = _smoke(name, "quick", SMALLEST[name], tmp_path)
    if name == "shift_robustness":
        m = out["records"][0]["metrics"]
        assert len(m["diagonal_curve"]) == 9 and m["shift_eval_images"] == 4
    # resumable: a second run finds every cell finished and trains nothing
    again = runner.run(_load(name, "quick", SMALLEST[name]), tmp_path / name,
                       fit=lambda *a, **k: pytest.fail("a finished cell was trained again"),
                       log=lambda s: None)
    assert again["records"] == out["records"]


def _mock_imagenet():
    """tfds.testing.mock_data serving 8 small JPEG-able images of 4 ImageNet-A classes."""
    tfds = pytest.importorskip("tensorflow_datasets")
    import io

    from PIL import Image

    from jaxeq.data import imagenet as inet

    g = np.random.default_rng(0)
    classes = inet.imagenet_a_200_indices()[:4]
    images = [g.integers(0, 256, (72, 80, 3), dtype=np.uint8) for _ in range(12)]
    labels = [classes[k % 4] for k in range(12)]

    def jpeg(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG")
        return buf.getvalue()

    def fake(self, split, decoders=None, **kwargs):
        return [{"image": jpeg(im) if decoders is not None else im, "label": np.int64(lab)}
                for im, lab in zip(images, labels)]

    return tfds.testing.mock_data(as_data_source_fn=fake, policy=tfds.testing.MockPolicy.USE_CODE)


# the paper's full protocols, cut to one cell, small images and two steps (model resnet18 for
# E4a instead of resnet50, to stay within the CI budget); everything else is the full config
FULL_SMOKE = {
    "quadrant": ["--config.archs=('resnet18',)", "--config.inits=('scratch',)",
                 "--config.borders=(0,)", "--config.train.batch_size=2",
                 "--config.train.eval_batch_size=4"],
    "shift_robustness": ["--config.archs=('resnet18',)", "--config.variants=('full',)",
                         "--config.train.batch_size=2", "--config.train.eval_batch_size=4",
                         "--config.train.dtype='float32'",
                         "--config.train.data.kwargs.image_size=48",
                         "--config.eval.data_kwargs.eval_resize=52",
                         "--config.eval.data_kwargs.eval_crop=52", "--config.eval.crop=48",
                         "--config.eval.max_offset=4", "--config.eval.passes=1",
                         "--config.eval.max_images=2"],
    "data_efficiency": ["--config.images_per_class=(1,)", "--config.variants=('full',)",
                        "--config.images_per_class_defs.1={'split_kwargs': {'train': {'per_class': 1}}}",
                        "--config.train.model.name='resnet18'", "--config.train.batch_size=2",
                        "--config.train.eval_batch_size=4", "--config.train.dtype='float32'",
                        "--config.train.data.kwargs.image_size=48",
                        "--config.train.data.kwargs.eval_resize=52",
                        "--config.train.data.kwargs.eval_crop=48"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FULL_SMOKE))
def test_full_protocol_configs_on_mock_imagenet(name, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXEQ_CACHE", str(tmp_path / "cache"))
    with _mock_imagenet():
        out = _smoke(name, None, FULL_SMOKE[name], tmp_path)
    assert out["records"][0]["cell"].get("variant") in ("same_zero", "full")


def test_reproduce_plan_and_layerwise_markdown():
    from jaxeq import reproduce

    for name, variant, overrides in reproduce.QUICK_PLAN:
        config = _load(name, variant, overrides)
        assert config.variant == "quick" and runner.cells(config)
    rows = [{"path": "conv1", "stride": (2, 2), "kind": "equivariant", "max": 0.0},
            {"path": "layer1_0/conv1", "stride": (4, 4), "kind": "equivariant", "max": 0.5},
            {"path": "head", "stride": None, "kind": "invariant", "max": 0.25}]
    md = reproduce._layerwise_markdown([("a", rows), ("b", rows[:1])])
    assert "| conv1 | (2, 2) | 0.0e+00 | 0.0e+00 |" in md
    assert "| head | – | 2.5e-01 | – |" in md and "layer1_0/conv1" not in md  # stage rows only


@pytest.mark.parametrize("padding,fill,invariant", [
    ("same", "circular", True),    # the paper's "circular" row (PyTorch <= 1.4's padding=2)
    ("full", "circular", False),   # circular pad 2 per side: 34-wide maps break the wrap
    ("full", "zeros", True),       # translates on a black canvas, shift 16 = 2 x stride 8
    ("same", "zeros", False),      # reads the absolute band from the border
])
def test_red_green_dissimilar_set_is_a_band_swap_the_net_may_be_invariant_to(padding, fill, invariant):
    """RESULTS.md's explanation of the red-green table, checked at initialisation."""
    import jax

    from jaxeq import data, models
    n = 24
    test = data.get("red_green", split="test", seed=3, size=n)
    swapped = data.get("red_green", split="test_dissimilar", seed=3, size=n)
    x = np.stack([test[i]["image"] for i in range(n)]).astype(np.float32)
    xd = np.stack([swapped[i]["image"] for i in range(n)]).astype(np.float32)
    model = models.get("red_green_net", padding=padding, fill=fill)
    variables = model.init(jax.random.PRNGKey(0), x[:1])
    a, b = (np.asarray(model.apply(variables, z)) for z in (x, xd))
    rel = np.max(np.abs(a - b)) / np.max(np.abs(a))
    if invariant:
        assert rel < 1e-5
    else:
        assert rel > 1e-3


@pytest.mark.slow
def test_metric_added_after_the_run_is_evaluated_on_the_finished_cells(tmp_path):
    """A metric added to a config later comes from each cell's checkpoint, without retraining,
    and equals what the trainer measured on the same split."""
    overrides = SMALLEST["red_green"][:1] + ["--config.variants=('full_zero',)"] + SMALLEST["red_green"][2:]
    out = _smoke("red_green", "quick", overrides, tmp_path)
    config = _load("red_green", "quick", overrides)
    with config.unlocked():
        config.metrics = {**config.metrics.to_dict(), "similar_again": "test"}
    again = runner.run(config, tmp_path / "red_green",
                       fit=lambda *a, **k: pytest.fail("a finished cell was trained again"),
                       log=lambda s: None)
    rec = again["records"][0]
    assert rec["posthoc_metrics"] == ["similar_again"]
    assert rec["metrics"]["similar_again"] == pytest.approx(out["records"][0]["metrics"]["similar"])
    cell = json.loads((tmp_path / "red_green" / "cells" / rec["name"] / "cell.json").read_text())
    assert cell["metrics"]["similar_again"] == rec["metrics"]["similar_again"]
