"""Experiments: config files, the cell runner, results tables/plots, and CI smoke runs.

The table tests feed given numbers (fake records) through the report code: they test the layout
and the aggregation, not any result. The smoke tests run each experiment's smallest variant (and
the full-protocol configs of E1/E3/E4a on ``tfds.testing.mock_data``) for a few steps.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from jaxeq import experiments as runner
from jaxeq.experiments import configs
from jaxeq.experiments import reports as report

NAMES = ("rook", "red_green", "quadrant", "shift_robustness", "data_efficiency")


def _load(name, variant=None, overrides=()):
    spec = name + (f":{variant}" if variant else "")
    return runner.load_config(spec, overrides)


# ----------------------------------------------------------------------------- configs and cells
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("variant", ["quick", None])
def test_configs_load_and_expand(name, variant):
    config = _load(name, variant)
    assert config.experiment == name
    assert config.variant == (variant or ("paper" if name == "red_green" else "full"))
    cells = runner.cells(config)
    assert cells and len({c["name"] for c in cells}) == len(cells)
    for cell in cells:
        cfg, split_kwargs = runner.cell_settings(config, cell["cell"])
        vdef = dict(config.variant_defs[cell["cell"]["variant"]]) if "variant" in cell["cell"] else {}
        if "padding" in dict(dict(vdef.get("model", {})).get("kwargs", {})):
            want = config.variant_defs[cell["cell"]["variant"]].model.kwargs.padding
            assert cfg.model.kwargs.padding == want
        if "seed" in cell["cell"]:
            assert cfg.seed == cell["cell"]["seed"]
        if "border" in cell["cell"]:
            assert cfg.data.kwargs.border == cell["cell"]["border"]
        if "arch" in cell["cell"]:
            assert cfg.model.name == cell["cell"]["arch"]
    # the docstring names a runnable command
    assert f"jaxeq run {name}" in configs.path(name).read_text()


def test_skip_cells_leaves_out_matching_cells():
    config = _load("quadrant", "cpu")
    names = [c["name"] for c in runner.cells(config)]
    assert len(names) == 28 and not any("bagnet33" in n and "border64" in n for n in names)
    assert sum("resnet18" in n and "border64" in n for n in names) == 4
    config.skip_cells = ({"arch": "resnet18", "init": "scratch"},)
    assert len(runner.cells(config)) == 24
    for bad in ({"depth": 3}, {}):
        config.skip_cells = (bad,)
        with pytest.raises(ValueError, match="skip_cells"):
            runner.cells(config)


def test_standard_bagnet33_is_blind_to_the_quadrant_from_border_32():
    # why quadrant:cpu skips BagNet-33 at border 64: with valid convolutions, a 33x33
    # receptive field and stride 8, once every window that sees the patch lies inside the
    # canvas (border >= 32) both corners give the same averaged output, for any weights;
    # at border 16 the upper-left patch loses windows and the outputs differ
    import jax

    from jaxeq import data, models
    model = models.get("bagnet33", num_classes=2, global_pool="avg")
    for border, blind in ((32, True), (16, False)):
        b = data.get("quadrant", source="photos", split="test", border=border, per_split=1).get_batch([0, 1])
        assert list(b["label"]) == [0, 1]  # one patch, at the upper-left and at the bottom-right
        v = model.init(jax.random.PRNGKey(0), b["image"][:1], train=False)
        leaves, tree = jax.tree.flatten(v)
        keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
        # random weights, biases and BatchNorm statistics (variances kept positive)
        v = jax.tree.unflatten(tree, [jax.numpy.abs(x) + 0.5 * jax.random.uniform(k, x.shape)
                                      if x.ndim == 1 else x * jax.random.uniform(k, x.shape, minval=0.5, maxval=1.5)
                                      for x, k in zip(leaves, keys)])
        y = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(v, b["image"]))
        gap = np.abs(y[1] - y[0]).max() / np.abs(y).max()
        assert (gap < 1e-5) == blind, (border, gap)


def test_red_green_protocol_fields():
    paper = _load("red_green")
    t = paper.train
    assert (t.optimizer.name, t.optimizer.lr, t.optimizer.rho, t.optimizer.eps) == ("adadelta", 1.0, 0.9, 1e-6)
    # the official loop stops on the 9th epoch in a row without improvement
    assert (t.optimizer.weight_decay, t.batch_size, t.epochs, t.early_stopping_patience) == (5e-5, 200, 50, 9)
    assert len(paper.seeds) == 10 and len(runner.cells(paper)) == 60
    # circular pad 2 per side and pad 1 (the paper's row) are different cells
    assert paper.variant_defs.full_circular.model.kwargs.padding == "full"
    assert paper.variant_defs.same_circular.model.kwargs.padding == "same"
    # the official protocol: one data set (numpy seed 1988) for every seed, fixed batch order,
    # selected and tested on the official sets (the first training images)
    cfgs = [runner.cell_settings(paper, c["cell"])[0] for c in runner.cells(paper)]
    assert {c.data.seed for c in cfgs} == {1988} and len({c.seed for c in cfgs}) == 10
    assert all(c.data.kwargs.generator == "official" and c.data.shuffle is False for c in cfgs)
    assert paper.metrics.similar == "test" and paper.metrics.similar_heldout == "heldout"
    # the held-out protocol (ours) draws its data per seed and shuffles
    heldout = _load("red_green", "heldout")
    h = runner.cell_settings(heldout, runner.cells(heldout)[0]["cell"])[0]
    assert h.data.seed is None and h.data.shuffle and h.data.kwargs.generator == "jaxeq"
    assert heldout.metrics.similar_official == "train_first1000"


def test_red_green_paper_cells_train_on_the_official_images(tmp_path):
    from jaxeq import data
    from jaxeq.train.config import data_seed

    paper = _load("red_green", "quick")
    cfgs = [runner.cell_settings(paper, c["cell"])[0] for c in runner.cells(paper)]
    a, b = (data.get("red_green", split="train", seed=data_seed(c), **dict(c.data.kwargs))
            for c in (cfgs[0], cfgs[-1]))
    assert cfgs[0].seed != cfgs[-1].seed
    assert a.images.tobytes() == b.images.tobytes()  # the seed changes the init, not the data


def test_unknown_variant_and_bad_spec():
    with pytest.raises(ValueError, match="variant must be one of"):
        _load("rook", "huge")
    with pytest.raises(ValueError, match="existing <file>.py"):
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
    from jaxeq import cli

    args, _ = cli.parse_args(["run", "rook:quick", "--workdir", "w",
                              "--config.seeds=(0,)", "--config.train.epochs", "2"])
    assert args.config == "rook:quick" and args.workdir == "w"
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


def test_red_green_table_adds_a_column_pair_per_extra_test_set():
    config = _load("red_green").to_dict()
    recs = _rg_records()
    for r in recs:
        r["metrics"].update(similar_heldout=70.0, dissimilar_heldout=71.0)
    md = report.table("red_green", recs, config, report.load_paper_results())
    header, _, *rows = md.splitlines()
    assert header.endswith("| similar: ours, held-out sets | dissimilar: ours, held-out sets |")
    assert all(r.endswith("| 70.0 ± 0.0 (n=3) | 71.0 ± 0.0 (n=3) |") for r in rows
               if not r.startswith(("| full_circular", "| same_circular", "| same_reflect")))


def test_quadrant_and_rook_tables_from_given_numbers():
    paper = report.load_paper_results()
    config = _load("quadrant", "quick").to_dict()
    recs = [{"name": "x", "cell": {"variant": v, "arch": "resnet18", "init": "scratch", "border": b,
                                   "seed": 1988}, "metrics": {"accuracy": acc, "accuracy_train": tr}}
            for v, b, acc, tr in [("standard", 0, 97.5, 99.0), ("standard", 16, 88.0, 92.5),
                                  ("full_zero", 0, 51.0, 50.0)]]
    md = report.table("quadrant", recs, config, paper)
    header, _, *rows = md.splitlines()
    assert "border 0: ours test / ours train images / paper" in header
    assert "border 32: ours test / ours train images / paper" in header
    same = next(r for r in rows if "| resnet18 | scratch | standard |" in r)
    assert "97.5 / 99.0 / 100.0" in same and "88.0 / 92.5 / 100.0" in same
    assert "not run / not run / 100.0" in same
    full = next(r for r in rows if "| resnet18 | scratch | full_zero |" in r)
    assert "51.0 / 50.0 / –" in full  # the paper ran the standard nets only
    frozen = next(r for r in rows if "| resnet18 | random_frozen | standard |" in r)
    assert "not run / not run / 99.7" in frozen
    bagnet = next(r for r in rows if "| bagnet33 | scratch | standard |" in r)
    assert "not run / not run / 100.0" in bagnet

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
SMOKE_STEPS = ["--config.train.max_steps=2", "--config.train.epochs=1", "--config.train.progress='off'"]


def _smoke(name, variant, overrides, tmp_path):
    config = _load(name, variant, [*SMOKE_STEPS, *overrides])
    out = runner.run(config, tmp_path / name, log=lambda s: None)
    assert out["records"] and (tmp_path / name / "results.md").is_file()
    for rec in out["records"]:
        for k, v in rec["metrics"].items():
            if not k.startswith("diagonal_curve"):
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
        assert len(m["diagonal_curve_final"]) == 9 and "top1_final" in m and "consistency_final" in m
    # resumable: a second run finds every cell finished and trains nothing
    again = runner.run(_load(name, "quick", [*SMOKE_STEPS, *SMALLEST[name]]), tmp_path / name,
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
                         "--config.train.data.kwargs.eval_resize=52",
                         "--config.train.data.kwargs.eval_crop=48",
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
    assert out["records"][0]["cell"].get("variant") in ("standard", "full")


def test_reproduce_plan_and_layerwise_markdown():
    from jaxeq.experiments import reproduce

    for name, variant, overrides in reproduce.QUICK_PLAN:
        config = _load(name, variant, overrides)
        assert config.variant == variant and runner.cells(config)
        # the CPU tasks, never the confounded red-green proxies of E3 / E4a
        assert config.experiment in ("rook", "red_green", "quadrant") or \
            config.train.data.name == "photo_id"
    rows = [{"path": "conv1", "stride": (2, 2), "kind": "equivariant", "max": 0.0},
            {"path": "layer1_0/conv1", "stride": (4, 4), "kind": "equivariant", "max": 0.5},
            {"path": "head", "stride": None, "kind": "invariant", "max": 0.25}]
    md = reproduce._layerwise_markdown([("a", rows), ("b", rows[:1])])
    assert "| conv1 | (2, 2) | 0.0e+00 | 0.0e+00 |" in md
    assert "| head | – | 2.5e-01 | – |" in md and "layer1_0/conv1" not in md  # stage rows only


def test_reproduce_runs_the_e4b_e5_analogs_only_when_named(tmp_path, monkeypatch):
    from jaxeq.experiments import reproduce

    ran = []
    monkeypatch.setattr(reproduce, "prepare", lambda config, workdir: None)
    monkeypatch.setattr(reproduce, "run", lambda config, workdir, log: ran.append(
        (config.experiment, config.variant)) or {"markdown": "", "results": "", "plots": []})
    reproduce.run_quick(tmp_path, ["patch_matching", "action_recognition", "rook"],
                        log=lambda s: None)
    assert ran == [("rook", "quick"), ("patch_matching", "cpu"), ("action_recognition", "cpu")]
    ran.clear()
    monkeypatch.setattr(reproduce, "layerwise_table", lambda *a, **k: "table")
    reproduce.run_quick(tmp_path, None, log=lambda s: None)
    assert [name for name, _ in ran] == [p[0] for p in reproduce.QUICK_PLAN]


def test_layerwise_table_says_when_its_trained_column_has_no_trained_cell(tmp_path):
    """``reproduce --quick --only layerwise`` on a fresh workdir: the trained column is there,
    marked not trained, with the command that fills it (not silently dropped)."""
    from jaxeq.experiments import reproduce

    md = reproduce.layerwise_table(str(tmp_path / "quadrant" / "no_cell"), size=64, content=16,
                                   shifts=((8, 8),))
    header = md.splitlines()[0]
    assert "full_zero trained (4QI): not trained" in header
    assert "--only quadrant layerwise" in md and str(tmp_path / "quadrant" / "no_cell") in md


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
    config = _load("red_green", "quick", [*SMOKE_STEPS, *overrides])
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


# ----------------------------------------------------------------------------- E3: which parameters are evaluated
def test_best_by_val_accuracy_keeps_the_highest_top1():
    """The official model_best: a later epoch replaces it only with a strictly higher top-1,
    whatever its loss (the loss rule would pick the other epoch here)."""
    from jaxeq.train.loop import improves

    best = {"loss": 0.50, "accuracy": 0.70}
    lower_loss_lower_acc = {"loss": 0.40, "accuracy": 0.69}
    assert improves(best, lower_loss_lower_acc, "val_loss")
    assert not improves(best, lower_loss_lower_acc, "val_accuracy")
    assert improves(best, {"loss": 0.9, "accuracy": 0.71}, "val_accuracy")
    assert not improves(best, {"loss": 0.1, "accuracy": 0.70}, "val_accuracy")  # ties keep the first
    assert improves(None, lower_loss_lower_acc, "val_accuracy")


def test_shift_and_data_efficiency_protocol_fields():
    e3 = _load("shift_robustness")
    t = e3.train
    assert (t.data.val_split, t.best_by, t.dtype) == ("val", "val_accuracy", "float32")
    # top-1 as the official validate(): resize 288, center-crop 224; shift metrics on 288/288
    assert dict(t.data.kwargs) == {"eval_resize": 288, "eval_crop": 224}
    assert dict(e3.eval.data_kwargs) == {"eval_resize": 288, "eval_crop": 288}
    assert dict(e3.metrics) == {"top1": "val", "top1_final": "val@final"}
    assert tuple(e3.eval.models) == ("best", "final")
    assert runner.metric_target("val@final") == ("val", "final")
    with pytest.raises(ValueError, match="after '@'"):
        runner.metric_target("val@best")

    e4 = _load("data_efficiency")
    subsets = {c["cell"]["images_per_class"]: runner.cell_settings(e4, c["cell"])[1]
               for c in runner.cells(e4) if c["cell"]["variant"] == "same"}
    assert subsets[50] == {"train": {"per_class": 50, "subset": "official50"}}
    for n in (100, 250, 500):
        assert subsets[n] == {"train": {"per_class": n}}  # seeded random ("random" is the default)
    assert subsets["all"] == {}
    # model_best by top-1 on the validation set, as the official Exp4 main.py; final beside it
    t4 = e4.train
    assert (t4.data.val_split, t4.best_by, t4.dtype) == ("val", "val_accuracy", "float32")
    assert dict(e4.metrics) == {"top1": "val", "top1_final": "val@final"}


def test_shift_metrics_use_the_best_val_checkpoint_and_final_beside_it(tmp_path):
    """A cell whose best-val parameters differ from its last epoch's: the headline shift metrics
    must come from the 'best' checkpoint, the ``*_final`` ones from the last epoch's."""
    import jax
    import optax

    import jaxeq as jq
    from jaxeq import data, models
    from jaxeq.data import to_model_input
    from jaxeq.train import state as state_lib
    from jaxeq.train.checkpoint import Checkpoints

    config = _load("shift_robustness", "quick", [
        "--config.archs=('red_green_net',)", "--config.variants=('full',)",
        "--config.variant_defs={'full': {'model': {'kwargs': {'padding': 'full', 'fill': 'zeros'}}}}",
        "--config.train.data.kwargs.size=16", "--config.eval.max_images=16",
        "--config.eval.passes=1"])
    model = models.get("red_green_net", padding="full", fill="zeros", num_classes=2)
    test = data.get("red_green", split="test", seed=0, size=16)
    images = np.stack([test[i]["image"] for i in range(16)])
    labels = np.array([test[i]["label"] for i in range(16)], np.int32)

    def init(seed):
        """Random parameters whose head bias splits these images' predictions between the two
        classes (a fresh net predicts one class for all, which cannot tell two nets apart)."""
        v = model.init(jax.random.PRNGKey(seed), images[:1], train=False)
        logits = np.asarray(model.apply(v, to_model_input(images[:, 4:28, 4:28]), train=False))
        shift = float(np.median(logits[:, 0] - logits[:, 1])) / 2
        v = jax.tree.map(np.asarray, v)
        v["params"]["head"]["bias"] = v["params"]["head"]["bias"] + np.array([-shift, shift], np.float32)
        return v

    params = {"best": init(0), "final": init(1)}

    def fake_fit(cfg, workdir):  # epoch 1 was the best, epoch 2 the last
        ckpts = Checkpoints(workdir)
        for which, name, step in (("best", "best", 1), ("final", "latest", 2)):
            st = state_lib.create(params[which], optax.sgd(0.1), jax.random.PRNGKey(0))
            ckpts.save(name, st.replace(step=jax.numpy.asarray(step, jax.numpy.int32)), {"epoch": step})
        ckpts.close()
        return {"test": {"test": {"accuracy": 0.5}}, "epochs_run": 2}

    out = runner.run(config, tmp_path, fit=fake_fit, log=lambda s: None)
    m = out["records"][0]["metrics"]

    def direct(which):
        predict = jax.jit(lambda im: model.apply(params[which], to_model_input(im), train=False))
        d = jq.diagonal_shift_accuracy(predict, images, labels, crop=24, offsets=range(9))
        top1 = 100.0 * np.mean(np.argmax(np.asarray(predict(images)), -1) == labels)
        return d["accuracy"], top1

    (curve_best, _), (curve_final, top1_final) = direct("best"), direct("final")
    assert not np.allclose(curve_best, curve_final)  # the test can tell the two apart
    np.testing.assert_allclose(m["diagonal_curve"], curve_best)
    np.testing.assert_allclose(m["diagonal_curve_final"], curve_final)
    assert m["diagonal"] == pytest.approx(np.mean(curve_best))
    assert m["top1_final"] == pytest.approx(top1_final)
    assert m["top1"] == 50.0  # the trainer's best-val test number, passed through
    md = (tmp_path / "results.md").read_text()
    assert "final model: diagonal" in md and "as the official model_best" in md
    assert "Compute dtype: float32" in md

    # a finished cell that lacks the final-model metrics gets them from its checkpoints
    cell = tmp_path / "cells" / out["records"][0]["name"] / runner.CELL_FILE
    rec = json.loads(cell.read_text())
    for k in ("diagonal_final", "diagonal_curve_final", "consistency_final", "top1_final"):
        del rec["metrics"][k]
    cell.write_text(json.dumps(rec))
    again = runner.run(config, tmp_path, fit=lambda *a, **k: pytest.fail("trained again"),
                       log=lambda s: None)["records"][0]
    np.testing.assert_allclose(again["metrics"]["diagonal_curve_final"], curve_final)
    assert again["metrics"]["consistency_final"] == m["consistency_final"]
    assert set(again["posthoc_metrics"]) == {"top1_final", "diagonal_final", "consistency_final"}


def test_shift_table_final_columns_and_dtype_note():
    paper = report.load_paper_results()
    cfg = _load("shift_robustness", None, ["--config.train.dtype=bfloat16"]).to_dict()
    recs = [{"name": "n", "cell": {"arch": "resnet50", "variant": "same", "seed": 0},
             "metrics": {"top1": 70.0, "diagonal": 69.0, "consistency": 90.0,
                         "top1_final": 69.5, "diagonal_final": 68.0, "consistency_final": 89.0}}]
    md = report.results_markdown("shift_robustness", recs, cfg, paper)
    header = next(line for line in md.splitlines() if line.startswith("| arch |"))
    assert header.endswith("| final model: top-1 | final model: diagonal | final model: consistency |")
    row = next(r for r in md.splitlines() if "| resnet50 | same |" in r)
    assert row.endswith("| 90.21 | 90.00 | 69.50 | 68.00 | 89.00 |")
    assert "Compute dtype: bfloat16" in md and "the paper ran float32" in md
    assert "resize 288, center-crop 224" in md


@pytest.mark.slow
def test_fit_keeps_the_highest_val_top1_epoch_as_best(tmp_path):
    import jaxeq.train as jtrain

    cfg = jtrain.default_config()
    cfg.model.name = "red_green_net"
    cfg.data.name = "red_green"
    cfg.data.kwargs = {"size": 40}
    cfg.data.test_splits = ["val"]
    cfg.optimizer.name = "adadelta"
    cfg.optimizer.lr = 1.0
    cfg.epochs = 4
    cfg.batch_size = 20
    cfg.best_by = "val_accuracy"
    cfg.progress = "off"
    cfg.checkpoint_every_steps = 0
    results = jtrain.fit(cfg, str(tmp_path))
    epochs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    accs = [e["val_accuracy"] for e in epochs]
    best = epochs[int(np.argmax(accs))]  # the first epoch with the highest top-1
    assert results["best_val"]["epoch"] == best["epoch"]
    assert jtrain.load_variables(str(tmp_path), "best")["step"] == best["step"]
    assert results["test"]["val"]["accuracy"] == pytest.approx(max(accs))


def test_workdir_recorded_before_best_by_existed_still_resumes(tmp_path):
    """A run recorded by a trainer without ``best_by`` selected by val loss, the default: its
    workdir resumes; a field that really differs is still refused."""
    from jaxeq.train import config as cfg_lib
    from jaxeq.train.loop import _check_workdir

    cfg = cfg_lib.validate({"model": {"name": "red_green_net"}, "data": {"name": "red_green"}})
    old = json.loads(cfg_lib.to_json(cfg))
    del old["best_by"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    _check_workdir(str(tmp_path), cfg)
    other = cfg_lib.validate({"model": {"name": "red_green_net"}, "data": {"name": "red_green"},
                              "best_by": "val_accuracy"})
    with pytest.raises(ValueError, match="best_by: 'val_loss' -> 'val_accuracy'"):
        _check_workdir(str(tmp_path), other)


# ----------------------------------------------------------------------------- issue 20: cached cells, early validation
def _fake_fit(calls):
    def fake_fit(cfg, workdir):
        calls.append(Path(workdir).relative_to(Path(workdir).parents[2]).as_posix())
        return {"test": {"test": {"accuracy": 0.75}}, "epochs_run": cfg.epochs}
    return fake_fit


_ROOK = ["--config.seeds=(0,)", "--config.train.epochs=2"]


def test_cached_cells_with_another_config_are_refused_or_retrained_under_force(tmp_path):
    calls = []
    runner.run(_load("rook", "quick", _ROOK), tmp_path, fit=_fake_fit(calls), log=lambda s: None)
    assert sorted(calls) == ["cells/full_zero/seed0", "cells/same_zero/seed0"]
    assert "config" in json.loads((tmp_path / "cells/same_zero/seed0/cell.json").read_text())
    # unchanged re-run: every cell reused (a runtime-only field may change)
    out = runner.run(_load("rook", "quick", _ROOK + ["--config.train.log_every_steps=7"]), tmp_path,
                     fit=_fake_fit(calls), log=lambda s: None)
    assert len(calls) == 2 and len(out["records"]) == 2 and "config" not in out["records"][0]
    # changed epochs: refused before anything trains, naming the cell and the key
    before = (tmp_path / "results.json").read_text()
    longer = _load("rook", "quick", ["--config.seeds=(0,)", "--config.train.epochs=30"])
    with pytest.raises(ValueError) as err:
        runner.run(longer, tmp_path, fit=_fake_fit(calls), log=lambda s: None)
    msg = str(err.value)
    assert "\n" not in msg and "same_zero/seed0" in msg and "full_zero/seed0" in msg
    assert "epochs: 2 recorded vs 30 now" in msg and "--workdir" in msg and "--force" in msg
    assert len(calls) == 2 and (tmp_path / "results.json").read_text() == before
    # one more seed under --force: only the two mismatching cells retrain, the new one trains
    longer = _load("rook", "quick", ["--config.seeds=(0,1)", "--config.train.epochs=30"])
    out = runner.run(longer, tmp_path, fit=_fake_fit(calls), log=lambda s: None, force=True)
    assert sorted(calls[2:]) == ["cells/full_zero/seed0", "cells/full_zero/seed1",
                                 "cells/same_zero/seed0", "cells/same_zero/seed1"]
    assert {r["epochs"] for r in out["records"]} == {30}
    # and now the workdir matches the 30-epoch config: nothing retrains, with or without force
    runner.run(longer, tmp_path, fit=_fake_fit(calls), log=lambda s: None, force=True)
    assert len(calls) == 6


def test_cached_cell_checked_against_the_trainers_config_json_when_cell_json_has_none(tmp_path):
    """Older workdirs: cell.json without a config; the trainer's config.json decides (a field it
    lacks counts as its default); with neither, the cell is refused."""
    from jaxeq.train import config as cfg_lib

    calls = []
    config = _load("rook", "quick", _ROOK)
    runner.run(config, tmp_path, fit=_fake_fit(calls), log=lambda s: None)
    for name in ("same_zero/seed0", "full_zero/seed0"):
        sub = tmp_path / "cells" / name
        rec = json.loads((sub / "cell.json").read_text())
        train = rec.pop("config")["train"]
        train.pop("best_by")  # recorded before the field existed: its default
        (sub / "cell.json").write_text(json.dumps(rec))
        if name.startswith("same"):
            (sub / "config.json").write_text(json.dumps(train))
    assert cfg_lib.default_config().best_by == "val_loss"
    with pytest.raises(ValueError, match=r"cell .full_zero/seed0. .*no config recorded"):
        runner.run(config, tmp_path, fit=_fake_fit(calls), log=lambda s: None)
    (tmp_path / "cells/full_zero/seed0/config.json").write_text(
        (tmp_path / "cells/same_zero/seed0/config.json").read_text().replace('"same"', '"full"'))
    runner.run(config, tmp_path, fit=_fake_fit(calls), log=lambda s: None)
    assert len(calls) == 2
    with pytest.raises(ValueError, match=r"epochs: 2 recorded vs 3 now"):
        runner.run(_load("rook", "quick", ["--config.seeds=(0,)", "--config.train.epochs=3"]),
                   tmp_path, fit=_fake_fit(calls), log=lambda s: None)


def test_another_experiment_into_the_same_workdir_is_refused_clearly(tmp_path):
    calls = []
    runner.run(_load("rook", "quick", _ROOK), tmp_path, fit=_fake_fit(calls), log=lambda s: None)
    red_green = _load("red_green", "quick", ["--config.seeds=(0,)"])
    with pytest.raises(ValueError) as err:
        runner.run(red_green, tmp_path, fit=_fake_fit(calls), log=lambda s: None)
    msg = str(err.value)
    assert "red_green run" in msg and "model.name: 'rook_net' recorded vs 'red_green_net' now" in msg
    assert "ScopeParamShapeError" not in msg and len(calls) == 2


@pytest.mark.parametrize("override, expected", [
    ("--config.variants=('same_zero','bogus')", r"cell 'bogus/seed0'.*no entry in config\.variant_defs"),
    ("--config.variant_defs.full_zero.model.kwargs.padding=bogus",
     r"cell 'full_zero/seed0'.*padding must be one of \('valid', 'same', 'full'\), got 'bogus'"),
    ("--config.variant_defs.full_zero.model.kwargs.colour=3", r"cell 'full_zero/seed0'.*colour"),
    ("--config.train.optimizer.name=adamw", r"cell 'valid/seed0'.*optimizer\.name='adamw'"),
    ("--config.train.data.name=bogus", r"cell 'valid/seed0'.*data\.name='bogus' is not one of"),
])
def test_bad_cell_settings_fail_before_anything_trains(tmp_path, override, expected):
    config = _load("red_green", "quick", ["--config.seeds=(0,)", override])
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=expected) as err:
        runner.run(config, workdir, fit=lambda *a, **k: pytest.fail("a cell was trained"),
                   log=lambda s: None)
    assert "\n" not in str(err.value)
    assert not workdir.exists()


def test_results_record_the_overrides(tmp_path):
    calls = []
    runner.run(_load("rook", "quick", _ROOK), tmp_path / "a", fit=_fake_fit(calls), log=lambda s: None)
    md = (tmp_path / "a" / "results.md").read_text()
    line = next(ln for ln in md.splitlines() if "Overrides of rook.py:quick" in ln)
    assert "`--config.seeds=(0,)` `--config.train.epochs=2`" in line
    assert "train.epochs: 100 -> 2" in line and "seeds: [0, 1, 2, 3, 4] -> [0]" in line
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["overrides"] == _ROOK
    assert res["changed_from_file"]["train.epochs"] == [100, 2]
    # a run of the file as is says so
    runner.run(_load("rook", "quick", ["--config.train.log_every_steps=200"]), tmp_path / "b",
               fit=_fake_fit(calls), log=lambda s: None)
    assert "Overrides of rook.py:quick: `--config.train.log_every_steps=200`" in (tmp_path / "b" / "results.md").read_text()
    config = _load("rook", "quick")
    assert runner.overrides_note(config) == "Settings: exactly rook.py:quick (no overrides)."


def test_overrides_note_for_a_subset_of_variants():
    config = _load("red_green", "quick", ['--config.variants=("same_zero",)'])
    note = runner.overrides_note(config)
    assert "a subset of the file's variants" in note and "not a like-for-like" not in note
    # a variant the file does not run, or any other change, is still flagged
    more = _load("red_green", "quick", ['--config.variants=("same_zero",)', "--config.train.epochs=1"])
    assert "not a like-for-like reproduction" in runner.overrides_note(more)
