"""jaxeq.train in one process: learning, optimizers as PyTorch, freezing, schedules, errors.

Uses the toys of tests/train/toys.py (a 4-channel conv net with BatchNorm on 8x8 images) so
these tests do not depend on the model and data registries.
"""
import json
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxeq.train import NonFiniteLossError, fit, load_variables
from jaxeq.train import optim, schedule, steps
from jaxeq.train.config import default_config, validate
from jaxeq.train.prepare import initial_variables
from tests.conftest import torch_or_skip
from tests.train import toys

# Count XLA compilations, to show configuration errors come before any.
_COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, *a, **k: _COMPILES.append(event)
    if event == "/jax/core/compile/backend_compile_duration" else None)


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_loss_decreases_in_a_few_steps(tmp_path, capsys):
    r = fit(toys.toy_config(epochs=1), tmp_path, model=toys.TinyNet(),
            sources=toys.toy_sources())
    losses = [row["loss"] for row in _read_jsonl(tmp_path / "train_steps.jsonl")]
    assert len(losses) == 8  # 64 examples / batch 8, one line per step
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    assert r["test"]["test"]["accuracy"] > 0.9 and r["stop_reason"] == "epochs"
    # files of the contract; one metrics line per evaluation
    assert {"config.json", "metrics.jsonl", "results.json"} <= set(os.listdir(tmp_path))
    assert [m["epoch"] for m in _read_jsonl(tmp_path / "metrics.jsonl")] == [1]
    out = capsys.readouterr().out
    assert "steps/s" not in out  # no progress bar when stdout is not a terminal
    assert "jaxeq.train: tiny_net on toy" in out  # the summary table


def test_compiled_once_bfloat16_and_finished_run_is_not_retrained(tmp_path):
    before = steps.TRACE_COUNTS.copy()
    cfg = toys.toy_config(epochs=3, dtype="bfloat16", **{"schedule.name": "step",
                                                         "schedule.step_epochs": 1})
    r = fit(cfg, tmp_path, model=toys.TinyNet(), sources=toys.toy_sources())
    assert steps.TRACE_COUNTS["train_step"] - before["train_step"] == 1
    assert steps.TRACE_COUNTS["eval_step"] - before["eval_step"] == 1  # val and test alike
    lrs = [m["lr"] for m in _read_jsonl(tmp_path / "metrics.jsonl")]
    np.testing.assert_allclose(lrs, [0.05, 0.005, 0.0005], rtol=1e-6)
    v = load_variables(tmp_path, "latest")
    assert all(a.dtype == np.float32 for a in jax.tree.leaves(v["params"]))
    assert np.isfinite(r["final_train"]["loss"]) and r["final_train"]["loss"] < 0.3
    again = fit(cfg, tmp_path, model=toys.TinyNet(), sources=toys.toy_sources())
    assert again["steps"] == r["steps"] and again["test"] == r["test"]


@pytest.mark.parametrize("bn_update", [True, False])
def test_head_only_changes_only_the_head(tmp_path, bn_update):
    cfg = toys.toy_config(epochs=1, trainable="head", bn_update_frozen=bn_update,
                          **{"optimizer.weight_decay": 0.1})
    sources = toys.toy_sources()
    fit(cfg, tmp_path, model=toys.TinyNet(), sources=sources)
    init = initial_variables(toys.TinyNet(), cfg.seed, sources["train"][0]["image"])
    final = load_variables(tmp_path, "latest")
    for name in ("conv", "bn"):  # weight decay and momentum must not touch them either
        for a, b in zip(jax.tree.leaves(init["params"][name]),
                        jax.tree.leaves(final["params"][name])):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(init["params"]["head"]["kernel"], final["params"]["head"]["kernel"])
    same_stats = all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(init["batch_stats"]), jax.tree.leaves(final["batch_stats"])))
    assert same_stats != bn_update


def _torch_steps(torch, opt_name, p0, grads, **kw):
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    cls = {"sgd": torch.optim.SGD, "adadelta": torch.optim.Adadelta, "adam": torch.optim.Adam}
    opt = cls[opt_name]([p], **kw)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("name,kw", [
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-2)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-2)),
    ("adadelta", dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=5e-2)),
    ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=1e-2)),
])
def test_optimizers_match_pytorch(x64, name, kw):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(5)
    grads = rng.standard_normal((4, 5))
    c = default_config().optimizer
    c.name = name
    for k, v in kw.items():
        if k == "betas":
            c.b1, c.b2 = v
        elif k != "lr":
            setattr(c, k, v)
    tx = optim.direction(c)
    p, s = jnp.asarray(p0), tx.init(jnp.asarray(p0))
    for g in grads:
        d, s = tx.update(jnp.asarray(g), s, p)
        p = p - kw["lr"] * d  # what the train step does
    np.testing.assert_allclose(p, _torch_steps(torch, name, p0, grads, **kw), rtol=1e-12,
                               atol=1e-14)


def test_plateau_matches_pytorch_reduce_on_plateau():
    torch = torch_or_skip()
    losses = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.5, 0.6, 0.6, 0.6, 0.4999]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, patience=2)
    plateau, lr, ours, theirs = schedule.Plateau(), 1.0, [], []
    for v in losses:
        ref.step(v)
        theirs.append(opt.param_groups[0]["lr"])
        lr *= 0.1 if plateau.update(v, patience=2) else 1.0
        ours.append(lr)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert min(ours) < 1.0  # the sequence does reduce


def test_plateau_stops_at_min_lr_and_early_stopping(tmp_path):
    # lr so small that float32 parameters never move: the val loss is flat from epoch 2 on
    model, sources = toys.TinyNet(use_bn=False), toys.toy_sources()
    cfg = toys.toy_config(epochs=20, **{"optimizer.lr": 1e-12, "schedule.name": "plateau",
                                        "schedule.patience": 0, "schedule.factor": 0.1,
                                        "schedule.min_lr": 1e-14, "schedule.reload_best": True})
    r = fit(cfg, tmp_path / "plateau", model=model, sources=sources)
    rows = _read_jsonl(tmp_path / "plateau" / "metrics.jsonl")
    assert r["stop_reason"] == "min_lr" and r["epochs_run"] == 3
    np.testing.assert_allclose([m.get("lr_reduced_to", 0.0) for m in rows], [0, 1e-13, 1e-14],
                               rtol=1e-5)
    cfg = toys.toy_config(epochs=20, early_stopping_patience=2, **{"optimizer.lr": 1e-12})
    r = fit(cfg, tmp_path / "early", model=model, sources=sources)
    assert r["stop_reason"] == "early_stopping" and r["epochs_run"] == 3
    assert r["best_val"]["epoch"] == 1


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path):
    # batch 8, no shuffle: sample 44 is in batch 5 (0-based step 5); checkpoints every 2 steps
    sources = toys.toy_sources(nan_index=44)
    cfg = toys.toy_config(epochs=1, checkpoint_every_steps=2, **{"data.shuffle": False})
    with pytest.raises(NonFiniteLossError, match=r"at step 5 \(.*epoch 0, batch 5\)") as e:
        fit(cfg, tmp_path, model=toys.TinyNet(), sources=sources)
    last = os.path.join(os.path.abspath(tmp_path), "checkpoints", "latest", "4")
    assert last in str(e.value) and os.path.isdir(last)
    kept = load_variables(tmp_path, "latest")
    assert kept["step"] == 4
    assert all(np.isfinite(a).all() for a in jax.tree.leaves(kept["params"]))


def _fake_registry(monkeypatch):
    models = types.ModuleType("jaxeq.models")
    models.names = lambda: ["tiny_net"]
    models.get = lambda name, **kw: toys.TinyNet(**{k: v for k, v in kw.items()
                                                    if k in ("num_classes", "dtype")})
    data = types.ModuleType("jaxeq.data")
    data.names = lambda: ["toy"]
    data.get = lambda name, *, split, seed=0, **kw: toys.toy_sources()[split]
    monkeypatch.setitem(sys.modules, "jaxeq.models", models)
    monkeypatch.setitem(sys.modules, "jaxeq.data", data)


@pytest.mark.parametrize("change,error,match", [
    ({"model.name": "tiny_nett"}, ValueError,
     r"model.name='tiny_nett' is not one of \['tiny_net'\]"),
    ({"data.name": "toys"}, ValueError, r"data.name='toys' is not one of \['toy'\]"),
    ({"optimizer.name": "adamw"}, ValueError, r"optimizer.name='adamw' is not one of"),
    ({"schedule.name": "linear"}, ValueError, r"schedule.name='linear' is not one of"),
    ({"trainable": "backbone"}, ValueError, r"trainable='backbone' is not one of"),
    ({"optimizer.momentun": 0.9}, ValueError,
     r"unknown key 'optimizer.momentun' \(did you mean 'momentum'"),
    ({"epoch": 3}, ValueError, r"unknown key 'epoch' \(did you mean 'epochs'"),
])
def test_bad_config_fails_before_compiling(tmp_path, monkeypatch, change, error, match):
    _fake_registry(monkeypatch)
    cfg = toys.toy_config()
    cfg.unlock()
    for key, value in change.items():
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[leaf] = value
    n = len(_COMPILES)
    with pytest.raises(error, match=match):
        fit(cfg, tmp_path / "w")
    assert len(_COMPILES) == n
    assert not os.path.exists(tmp_path / "w" / "config.json")  # nothing recorded


def test_workdir_errors_before_compiling(tmp_path, monkeypatch):
    _fake_registry(monkeypatch)
    (tmp_path / "file").write_text("x")
    n = len(_COMPILES)
    with pytest.raises(PermissionError, match="is not writable"):
        fit(toys.toy_config(), tmp_path / "file" / "w")
    assert len(_COMPILES) == n
    fit(toys.toy_config(max_steps=1), tmp_path / "run")  # through the (fake) registries
    n = len(_COMPILES)
    with pytest.raises(ValueError, match=r"another config .*optimizer.lr: 0.05 -> 0.01"):
        fit(toys.toy_config(max_steps=1, **{"optimizer.lr": 0.01}), tmp_path / "run")
    assert len(_COMPILES) == n
    # fields that do not change the numbers may differ on resume
    fit(toys.toy_config(max_steps=1, log_every_steps=7), tmp_path / "run")


def test_validate_fills_defaults_and_locks():
    c = validate({"model": {"name": "m"}, "data": {"name": "d"}, "batch_size": 4})
    assert c.eval_batch_size == 4 and c.optimizer.name == "sgd"
    with pytest.raises(AttributeError):
        c.new_field = 1
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        validate({"model": {"name": "m"}, "data": {"name": "d"}, "batch_size": 0})


def test_head_only_step_skips_the_body_backward_and_matches_the_masked_step():
    from jaxeq.train import state as state_lib
    model = toys.TinyNet(features=16)
    src = toys.toy_sources(n_train=8)["train"]
    batch = {"image": np.stack([src[i]["image"] for i in range(8)]),
             "label": np.array([src[i]["label"] for i in range(8)], np.int32),
             "mask": np.ones((8,), bool)}
    variables = initial_variables(model, 0, batch["image"][0])
    opt = default_config().optimizer
    opt.name, opt.lr, opt.momentum, opt.weight_decay = "sgd", 0.1, 0.9, 0.1
    tx = optim.make_optimizer(opt, variables["params"], "head")
    lr_fn = lambda step: 0.1
    kw = dict(update_batch_stats=True, train_mode=True)
    head_only = jax.jit(steps.make_train_step(model, tx, lr_fn, trainable="head", **kw))
    masked = jax.jit(steps.make_train_step(model, tx, lr_fn, trainable="all", **kw))
    st = state_lib.create(variables, tx, jax.random.PRNGKey(0))
    a, b = head_only(st, batch), masked(st, batch)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    flops = lambda f: f.lower(st, batch).compile().cost_analysis()["flops"]
    assert flops(head_only) < 0.7 * flops(masked)  # no conv weight/input gradients
