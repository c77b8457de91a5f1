"""The evaluators say which parameters they loaded, and never fall back from 'best' quietly."""
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from jaxeq.experiments.evaluators import checkpoints as ckpt_ev
from jaxeq.experiments.evaluators import shift_robustness
from jaxeq.train import fit, load_variables
from tests.train import toys


@pytest.fixture(autouse=True)
def _tiny_net_by_name(monkeypatch):
    import jaxeq.models
    monkeypatch.setattr(jaxeq.models, "get", lambda name, **kw: toys.TinyNet())


def _cell(tmp_path, name, **overrides):
    cfg = toys.toy_config(epochs=1, **overrides)
    fit(cfg, str(tmp_path / name), model=toys.TinyNet(), sources=toys.toy_sources())
    return cfg, str(tmp_path / name)


def _same(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_best_final_and_no_validation_are_named(tmp_path):
    cfg, cell = _cell(tmp_path, "val")
    _, variables, params = ckpt_ev.load_trained_params(cfg, cell, "best")
    assert params == "best"
    _same(variables["params"], load_variables(cell, "best")["params"])
    assert ckpt_ev.load_trained_params(cfg, cell, "final")[2] == "final"

    cfg, cell = _cell(tmp_path, "noval", **{"data.val_split": None})
    _, variables, params = ckpt_ev.load_trained_params(cfg, cell, "best")
    assert params == "last (no validation split)"
    _same(variables["params"], load_variables(cell, "latest")["params"])
    assert len(ckpt_ev.load_trained(cfg, cell, "best")) == 2  # the (model, variables) API


def test_validated_cell_without_best_is_an_error(tmp_path):
    cfg, cell = _cell(tmp_path, "val")
    shutil.rmtree(f"{cell}/checkpoints/best")
    with pytest.raises(FileNotFoundError, match=r"val: no 'best' checkpoint although the run "
                                                r"validates on 'val'"):
        ckpt_ev.load_trained_params(cfg, cell, "best")
    assert ckpt_ev.load_trained_params(cfg, cell, "final")[2] == "final"


def test_shift_robustness_record_names_the_parameters(tmp_path, monkeypatch):
    cfg, cell = _cell(tmp_path, "noval", **{"data.val_split": None})
    rng = np.random.default_rng(0)
    source = [{"image": rng.standard_normal((10, 10, 1)).astype(np.float32), "label": k % 2}
              for k in range(4)]
    monkeypatch.setattr(shift_robustness, "split_source", lambda c, split, kw: source)
    ev = ml_collections.ConfigDict({"split": "test", "data_kwargs": {}, "max_images": 0,
                                    "crop": 8, "max_offset": 2, "passes": 1, "batch_size": 4,
                                    "seed": 0})
    out = shift_robustness.evaluate(cfg, cell, ev, ("best", "final"))
    assert out["shift_eval_params"] == "last (no validation split)"
    assert out["shift_eval_params_final"] == "final"
    assert out["diagonal"] == out["diagonal_final"]  # the same parameters, loaded twice


def test_labels_go_beside_the_metrics_so_every_metric_is_a_number():
    from jaxeq.experiments.evaluators import merge_evaluation
    from jaxeq.experiments.runner import record_from_results

    rec = record_from_results("a/s0", {"variant": "a", "seed": 0},
                              {"test": {"test": {"accuracy": 0.5}}, "test_params": "best"},
                              {"top1": "test"}, 1.0,
                              {"diagonal": 40.0, "shift_eval_params": "best"})
    assert rec["metrics"] == {"top1": 50.0, "diagonal": 40.0}
    assert rec["evaluated_with"] == {"test_params": "best", "shift_eval_params": "best"}
    merge_evaluation(rec, {"diagonal_final": 30.0, "shift_eval_params_final": "final"})
    assert rec["metrics"]["diagonal_final"] == 30.0
    assert rec["evaluated_with"]["shift_eval_params_final"] == "final"
