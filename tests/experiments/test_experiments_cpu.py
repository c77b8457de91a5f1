"""The ``cpu`` variants of E1 / E3 / E4a (the CPU analogs on photographs, #15): their configs,
the paired-difference statistics, the circular-shift metric of the shift evaluator, the
reports built from given numbers, and smoke runs of each variant for two steps."""
import math

import numpy as np
import pytest

from jaxeq import experiments as runner
from jaxeq.experiments import reports as report
from jaxeq.experiments.reports import common


def _load(name, variant="cpu", overrides=()):
    return runner.load_config(f"{name}:{variant}", overrides)


# ----------------------------------------------------------------------------- configs
def test_cpu_configs_expand_to_their_grids():
    e3 = _load("shift_robustness")
    assert len(runner.cells(e3)) == 4 * len(e3.seeds) and len(e3.seeds) >= 3
    cfg, _ = runner.cell_settings(e3, runner.cells(e3)[0]["cell"])
    assert (cfg.data.name, cfg.data.kwargs.crop, cfg.model.kwargs.num_classes) == ("photo_id", 48, 14)
    assert dict(e3.eval.data_kwargs) == {"crop": None, "per_class": 20} and e3.eval.circular
    # the ImageNet config keeps circular off: its numbers are unchanged
    assert not _load("shift_robustness", "full").eval.get("circular", False)

    e4 = _load("data_efficiency")
    assert len(e4.seeds) >= 5 and tuple(e4.images_per_class) == (5, 10, 25, 50, 100)
    epochs = set()
    for cell in runner.cells(e4):
        cfg, split_kwargs = runner.cell_settings(e4, cell["cell"])
        assert split_kwargs == {"train": {"per_class": cell["cell"]["images_per_class"]}}
        epochs.add(cfg.epochs)
    assert len(epochs) == 1  # the same recipe for every subset size

    e1 = _load("quadrant")
    assert tuple(e1.borders) == (0, 16, 32, 64)
    by_arch = {c["cell"]["arch"]: runner.cell_settings(e1, c["cell"])[0] for c in runner.cells(e1)}
    assert by_arch["resnet18"].model.kwargs.global_pool == "max"
    assert by_arch["bagnet33"].model.kwargs.global_pool == "avg"


# ----------------------------------------------------------------------------- statistics
def test_paired_difference_and_t_interval_by_hand():
    a = {0: 10.0, 1: 12.0, 2: 11.0, 3: 50.0}  # seed 3 has no partner: left out
    b = {0: 9.0, 1: 10.0, 2: 11.0}
    d = common.paired_difference(a, b)
    # differences 1, 2, 0: mean 1, sample std 1, t_{0.975,2} = 4.303, half width 4.303 / sqrt(3)
    half = 4.303 / math.sqrt(3)
    assert d["n"] == 3 and d["mean"] == pytest.approx(1.0) and d["std"] == pytest.approx(1.0)
    assert (d["lo"], d["hi"]) == (pytest.approx(1 - half), pytest.approx(1 + half))
    assert common.fmt_diff(d) == "+1.00 [-1.48, +3.48] (n=3)"
    assert common.paired_difference({0: 1.0}, {1: 1.0}) is None
    assert common.fmt_diff(common.paired_difference({0: 3.0}, {0: 1.0})) == "+2.00 (n=1, no interval)"
    assert common.t975(1) == 12.706 and common.t975(30) == 2.042
    assert common.t975(60) == pytest.approx(2.000, abs=1e-3)
    assert common.t975(120) == pytest.approx(1.980, abs=1e-3)
    with pytest.raises(ValueError, match="df must be"):
        common.t975(0)


def _records(metrics_of):
    return [{"name": f"{v}/seed{s}", "cell": {"variant": v, "arch": "resnet18", "seed": s},
             "metrics": metrics_of(v, s)} for v in ("same", "full", "same_blurpool", "full_blurpool")
            for s in range(3)]


def test_shift_cpu_table_has_circular_and_paired_differences(tmp_path):
    paper = report.load_paper_results()
    cfg = _load("shift_robustness").to_dict()
    base = {"same": 80.0, "full": 82.0, "same_blurpool": 81.0, "full_blurpool": 81.0}
    recs = _records(lambda v, s: {"top1": base[v] + s, "diagonal": base[v] + (v == "full") * s,
                                  "consistency": 90.0, "circular_consistency": 70.0 + s,
                                  "diagonal_curve": [base[v]] * 17})
    md = report.table("shift_robustness", recs, cfg, paper)
    assert "circular consistency: ours" in md.splitlines()[0]
    row = next(r for r in md.splitlines() if r.startswith("| resnet18 | full − same |"))
    # top1: differences 2, 2, 2 (no spread); diagonal: 2, 3, 4 -> +3, t * 1 / sqrt(3)
    half = 4.303 / math.sqrt(3)
    assert "+2.00 [+2.00, +2.00] (n=3)" in row
    assert f"+3.00 [{3 - half:+.2f}, {3 + half:+.2f}] (n=3)" in row
    assert "| resnet18 | full_blurpool − same_blurpool |" in md
    assert "shift_diagonal_curve.png" in {p.name for p in report.plot("shift_robustness", recs, cfg, paper, tmp_path)}


def test_data_efficiency_cpu_keeps_imagenet_apart(tmp_path):
    paper = report.load_paper_results()
    cfg = _load("data_efficiency").to_dict()
    recs = [{"name": "x", "cell": {"variant": v, "images_per_class": n, "seed": s},
             "metrics": {"top1": 50.0 + (v == "full") * (1 + s)}}
            for v in ("same", "full") for n in (5, 100) for s in range(5)]
    md = report.table("data_efficiency", recs, cfg, paper)
    ours = md.split("\n\n")[0]
    assert "paper" not in ours and "| 100 | 50.00 ± 0.00 (n=5) | 53.00 ± 1.41 (n=5) |" in ours
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert f"| 5 | full − same | +3.00 [{3 - half:+.2f}, {3 + half:+.2f}] (n=5) |" in md
    assert "ANOTHER data set" in md and "| 50 | 26.39 | 31.16 |" in md
    (png,) = report.plot("data_efficiency", recs, cfg, paper, tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # on ImageNet the paper's numbers stay beside ours, as before
    assert "| 50 | 26.39 | not run |" in report.table("data_efficiency", [], _load("data_efficiency", "full").to_dict(), paper)


# ----------------------------------------------------------------------------- circular metric
def _tiny(circular_invariant):
    import flax.linen as nn
    import jax.numpy as jnp

    class Tiny(nn.Module):
        """A circular conv + global mean (exactly invariant to circular shifts), or a dense
        layer on the flattened image (not invariant)."""
        @nn.compact
        def __call__(self, x, train=False):
            if circular_invariant:
                x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
                x = nn.relu(nn.Conv(4, (3, 3), padding="VALID")(x)).mean((1, 2))
            else:
                x = x.reshape(x.shape[0], -1)
            return nn.Dense(3)(x)

    return Tiny()


@pytest.mark.parametrize("invariant", [True, False])
def test_shift_evaluator_circular_consistency_on_a_tiny_model(invariant, monkeypatch):
    import jax
    import ml_collections

    import jaxeq as jq
    from jaxeq.data import to_model_input
    from jaxeq.experiments.evaluators import shift_robustness as ev_mod

    g = np.random.default_rng(0)
    images = g.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
    source = [{"image": im, "label": np.int32(k % 3)} for k, im in enumerate(images)]
    model = _tiny(invariant)
    variables = model.init(jax.random.PRNGKey(1), to_model_input(images[:1, 2:10, 2:10]))
    monkeypatch.setattr(ev_mod, "load_trained_params", lambda cfg, d, w: (model, variables, w))
    monkeypatch.setattr(ev_mod, "split_source", lambda cfg, split, kw: source)
    ev = ml_collections.ConfigDict({"split": "test", "data_kwargs": {}, "max_images": 0,
                                    "crop": 8, "max_offset": 4, "passes": 3, "batch_size": 6,
                                    "seed": 5, "circular": True, "circular_max_shift": 4})
    out = ev_mod.evaluate(None, "unused", ev)
    assert ev_mod.metric_names(("best",), ev) == ["diagonal", "consistency", "circular_consistency"]
    assert ev_mod.missing(ev, {"diagonal": 1, "consistency": 1}) == ("best",)

    predict = jax.jit(lambda im: model.apply(variables, to_model_input(im), train=False))
    sub = jax.random.split(jax.random.PRNGKey(5))[1]
    want = jq.circular_consistency(predict, images[:, 2:10, 2:10], max_shift=4, passes=3,
                                   key=jax.random.fold_in(sub, 1))
    assert out["circular_consistency"] == pytest.approx(float(want))
    if invariant:
        assert out["circular_consistency"] == 100.0
    # off (the default): no circular metric, and the other metrics are the same numbers
    ev.circular = False
    off = ev_mod.evaluate(None, "unused", ev)
    assert "circular_consistency" not in off and ev_mod.missing(ev, off) == ()
    assert off["consistency"] == out["consistency"] and off["diagonal"] == out["diagonal"]


# ----------------------------------------------------------------------------- smoke runs (real training)
SMOKE = ["--config.train.max_steps=2", "--config.train.epochs=3", "--config.train.progress='off'",
         "--config.seeds=(0,)"]
CPU_SMOKE = {  # each cpu variant cut to one cell and small splits of its real data
    "shift_robustness": ["--config.variants=('full_blurpool',)",
                         "--config.train.data.kwargs.per_class=2", "--config.train.batch_size=4",
                         "--config.eval.data_kwargs.per_class=1", "--config.eval.passes=1"],
    "data_efficiency": ["--config.variants=('full',)", "--config.images_per_class=(5,)",
                        "--config.train.data.kwargs.per_class=1", "--config.train.batch_size=4"],
    "quadrant": ["--config.archs=('resnet18',)", "--config.inits=('scratch',)",
                 "--config.variants=('full_zero',)", "--config.borders=(64,)",
                 "--config.train.data.kwargs.per_split=2", "--config.train.batch_size=2",
                 "--config.train.eval_batch_size=4", "--config.arch_defs.resnet18.epochs=1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CPU_SMOKE))
def test_cpu_variant_smoke(name, tmp_path):
    overrides = SMOKE[:-1] if name == "quadrant" else SMOKE  # quadrant: its own seed 1988
    config = _load(name, "cpu", [*overrides, *CPU_SMOKE[name]])
    out = runner.run(config, tmp_path, log=lambda s: None)
    (rec,) = out["records"]
    for k, v in rec["metrics"].items():
        if not k.startswith("diagonal_curve"):
            assert v is not None and 0.0 <= v <= 100.0, (k, v)
    assert (tmp_path / "results.md").is_file() and out["plots"]
    if name == "shift_robustness":
        assert len(rec["metrics"]["diagonal_curve"]) == 17 and rec["metrics"]["shift_eval_images"] == 14
        assert "circular_consistency" in rec["metrics"]
    if name == "data_efficiency":
        assert rec["cell"]["images_per_class"] == 5
