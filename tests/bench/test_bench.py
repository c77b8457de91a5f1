"""Smoke tests of the benchmark harness and its JSON row schema (tiny sizes, no timing claims)."""
import json
import os
import time

import numpy as np
import pytest

from jaxeq.bench import harness
from jaxeq.cli.xla_env import merge_flags as _merge_flags
from tests.conftest import torch_or_skip


def test_compare_rows_schema_and_speedup():
    rows = harness.compare("unit/sleep", "unit", lambda: time.sleep(0.002),
                           {"slow": lambda: time.sleep(0.006)},
                           outputs=lambda: (np.ones(3), {"slow": np.ones(3)}),
                           repeats=5, warmup=1)
    (r,) = rows
    assert set(harness.ROW_KEYS) <= set(r)
    assert r["agree"] is True and r["skipped"] is None and r["repeats"] == 5
    assert r["jaxeq_min_s"] <= r["jaxeq_median_s"] <= r["jaxeq_max_s"]
    assert r["torch_min_s"] <= r["torch_median_s"] <= r["torch_max_s"]
    assert r["speedup"] == pytest.approx(r["torch_median_s"] / r["jaxeq_median_s"])
    assert r["speedup"] > 1  # 6 ms of sleep against 2 ms
    json.dumps(rows)  # JSON-serialisable


def test_disagreeing_outputs_are_not_timed():
    calls = []
    rows = harness.compare("unit/wrong", "unit", lambda: calls.append("j"),
                           {"ref": lambda: calls.append("t")},
                           outputs=lambda: (np.array([1.0, 2.0]), {"ref": np.array([1.0, 2.1])}),
                           check=harness.Check(rtol=1e-3), repeats=5)
    (r,) = rows
    assert r["agree"] is False and r["jaxeq_median_s"] is None and r["speedup"] is None
    assert "disagree" in r["skipped"] and calls == []


def test_agree_is_relative_to_scale_and_rejects_nan():
    ok, rel = harness.agree([np.array([100.0, 0.0])], [np.array([100.0, 0.005])],
                            harness.Check(rtol=1e-4))
    assert ok and rel == pytest.approx(5e-5)
    assert not harness.agree(np.array([np.nan]), np.array([1.0]), harness.Check())[0]


def test_per_leaf_tolerances_judge_each_leaf_and_name_them_when_failing():
    ours = [1.0 + 2e-5, np.array([1.0, 1.004])]  # loss off by 2e-5, update off by 4e-3
    ref = [1.0, np.array([1.0, 1.0])]
    assert harness.leaf_rel_diffs(ours, ref) == pytest.approx([2e-5, 4e-3])
    # one shared rtol loose enough for the update passes the loss too ...
    assert harness.agree(ours, ref, harness.Check(rtol=1e-2))[0]
    # ... a per-leaf rtol holds the loss to 1e-5 while the update keeps 1e-2
    check = harness.Check(leaf_rtols=(1e-5, 1e-2))
    assert not harness.agree(ours, ref, check)[0]
    assert harness.agree([1.0 + 5e-6, ours[1]], ref, check)[0]
    (r,) = harness.compare("unit/leaf", "unit", lambda: None, {"ref": lambda: None},
                           outputs=lambda: (ours, {"ref": ref}), check=check, repeats=1,
                           warmup=0)
    assert r["agree"] is False and r["speedup"] is None
    assert "[2e-05, 0.004]" in r["skipped"] and "[1e-05, 0.01]" in r["skipped"]
    with pytest.raises(ValueError, match="leaf_rtols has 1 entries"):
        harness.agree(ours, ref, harness.Check(leaf_rtols=(1e-5,)))


def test_train_row_check_holds_loss_and_head_to_1e5_and_the_stem_to_torch():
    from jaxeq.bench import model_steps
    ref64 = [2.0, np.array([1.0, -1.0]), np.array([0.5, 0.25])]
    torch32 = {"eager": [2.0 + 2e-6, np.array([1.003, -1.0]), np.array([0.5, 0.25])]}
    extra = {}
    check = model_steps._f64_check([2.0, np.array([1.0, -1.0]), np.array([0.5, 0.25])],
                                   torch32, ref64, "float32", extra)
    assert check.leaf_rtols == pytest.approx((1e-5, 6e-3, 1e-5))
    assert extra["torch_float32_rel_err_vs_f64"]["eager"]["conv1_update"] == pytest.approx(3e-3)
    assert set(extra["jaxeq_float32_rel_err_vs_f64"]) == set(model_steps.TRAIN_LEAVES)
    # a head update off by 1e-4 fails even though the stem tolerance is 6e-3
    assert not harness.agree([2.0, ref64[1], ref64[2] * (1 + 1e-4)], ref64, check)[0]
    bf16 = model_steps._f64_check(ref64, torch32, ref64, "bfloat16", {})
    assert bf16.leaf_rtols == pytest.approx((0.1, 0.1, 0.1))


def test_train_row_check_opens_the_head_only_as_far_as_torchs_better_layout_needs():
    from jaxeq.bench import model_steps
    ref64 = [2.0, np.array([1.0, -1.0]), np.array([0.5, 0.25])]
    # head update: torch NCHW 3e-5 off, channels_last 1e-4 off (ResNet-50 at 112, batch 32)
    torch32 = {"nchw": [2.0, ref64[1], ref64[2] * (1 + 3e-5)],
               "channels_last": [2.0, ref64[1], ref64[2] * (1 + 1e-4)]}
    check = model_steps._f64_check(ref64, torch32, ref64, "float32", {})
    assert check.leaf_rtols[2] == pytest.approx(6e-5)
    assert harness.agree([2.0, ref64[1], ref64[2] * (1 + 3.5e-5)], ref64, check)[0]
    assert not harness.agree([2.0, ref64[1], ref64[2] * (1 + 9e-5)], ref64, check)[0]


def test_time_alternating_rotates_and_validates():
    order = []
    harness.time_alternating({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                             repeats=2, warmup=0)
    assert order == ["a", "b", "b", "a"]
    with pytest.raises(ValueError, match="repeats"):
        harness.time_alternating({"a": lambda: None}, repeats=0)


def test_time_alternating_settles_each_fn_before_timing_it():
    """With ``settle`` the call before each timed one is the same fn's, never the other's."""
    order = []
    times = harness.time_alternating({"a": lambda: order.append("a"),
                                      "b": lambda: order.append("b")},
                                     repeats=2, warmup=0, settle=1)
    assert order == ["a", "a", "b", "b", "b", "b", "a", "a"]
    with pytest.raises(ValueError, match="settle"):
        harness.time_alternating({"a": lambda: None}, settle=-1)
    assert [len(t) for t in times.values()] == [2, 2]


def test_count_flops_of_a_conv_and_a_dot():
    import jax.numpy as jnp
    import jaxeq as jq
    x, w = jnp.zeros((2, 8, 8, 3)), jnp.zeros((3, 3, 3, 4))
    assert harness.count_flops(lambda x, w: jq.conv(x, w, padding="same"), x, w) == \
        2 * 2 * 8 * 8 * 4 * 9 * 3
    assert harness.count_flops(lambda a, b: a @ b, jnp.zeros((5, 6)), jnp.zeros((6, 7))) == \
        2 * 5 * 6 * 7


def test_user_flags_win_over_ours():
    assert _merge_flags("--xla_cpu_experimental_ynn_fusion_type=foo",
                        ["--xla_cpu_experimental_ynn_fusion_type=", "--a=1"]) == \
        "--xla_cpu_experimental_ynn_fusion_type=foo --a=1"


def test_conv_group_quick_rows_agree_with_torch():
    torch_or_skip()
    from jaxeq.bench import conv_modes
    rows = conv_modes.rows(repeats=1, warmup=0, device="cpu", quick=True, only="/same/reflect/",
                     command="test", log=lambda *_: None)
    assert [r["row"] for r in rows] == ["conv/fwd/same/reflect/12/b2/float32"] * 2 + \
        ["conv/fwdbwd/same/reflect/12/b2/float32"] * 2
    assert {r["torch_variant"] for r in rows} == {"eager-NCHW", "eager-channels_last"}
    assert all(r["agree"] is True and r["speedup"] > 0 for r in rows)


def test_bench_to_md_renders_rows(tmp_path):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).parents[2] / "scripts" / "bench_to_md.py"
    spec = importlib.util.spec_from_file_location("bench_to_md", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = harness.compare("unit/x", "unit", lambda: None, {"b": lambda: None}, repeats=1)
    rows.append(harness.skipped_row("unit/y", "unit", "dependency missing"))
    src = tmp_path / "rows.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "B.md"
    out.write_text("# notes kept\n<!-- bench:begin -->old<!-- bench:end -->\ntail kept\n")
    mod.main([str(src), "--out", str(out)])
    text = out.read_text()
    assert "# notes kept" in text and "tail kept" in text and "old" not in text
    assert "`unit/x`" in text and "skipped: dependency missing" in text


def test_gpu_without_cuda_says_so(monkeypatch):
    import sys
    import types

    from jaxeq import bench
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", fake)
    with pytest.raises(ValueError, match=r"^--device gpu needs a CUDA device, and PyTorch finds "
                                         r"none .*use --device cpu$"):
        bench._configure_torch("gpu")


def test_probe_sweep_shift_grid_and_torch_translate_match_jaxeq():
    torch = torch_or_skip()
    import jaxeq as jq
    from jaxeq.bench import invariance_sweep as sweep
    s = sweep._shifts(16)
    assert s.shape == (16, 2) and s.min() == -2 and s.max() == 1
    assert len({tuple(v) for v in sweep._shifts(256)}) == 256
    x = np.random.default_rng(0).standard_normal((1, 7, 9, 2)).astype(np.float32)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)
    for action, ours in (("roll", jq.roll), ("translate", jq.translate)):
        for a, b in ((2, -3), (-1, 4), (0, 0), (-6, 8)):
            got = sweep._torch_shift(torch, tx, a, b, action).permute(0, 2, 3, 1).numpy()
            np.testing.assert_array_equal(got, np.asarray(ours(x, (a, b))))


def test_shift_metrics_reference_equals_the_engine_on_a_position_reading_classifier():
    import jax.numpy as jnp

    import jaxeq as jq
    from jaxeq.bench import shift_metrics
    g = np.random.default_rng(0)
    w = jnp.asarray(g.standard_normal((8 * 8 * 2, 5)).astype(np.float32))
    f = lambda v: v.reshape(v.shape[0], -1) @ w  # noqa: E731  (reads every pixel's position)
    x = jnp.asarray(g.standard_normal((3, 8, 8, 2)).astype(np.float32))
    shifts = np.asarray(jq.shift_grid(2))
    engine = shift_metrics._metrics_of(jq.worst_case_shifts(f, x, shifts, action="roll"))
    shifted = np.stack([np.asarray(f(jq.roll(x, s))) for s in shifts])
    ref = shift_metrics.reference_metrics(np.asarray(f(x)), shifted)
    assert 0 < ref[0][1] < 1 and ref[0][2] > 0  # some shifts flip, some do not
    for a, b in zip(engine, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    frac = shift_metrics._fractional_grid(4, 0.5)
    assert frac.shape == (16, 2) and frac.min() == -1.0 and frac.max() == 0.5


@pytest.mark.parametrize("tf32", [False, True])
def test_gpu_float32_precision_is_set_for_both_frameworks(monkeypatch, tf32):
    import sys
    import types

    import jax

    from jaxeq import bench
    from jaxeq.cli import xla_env
    monkeypatch.setattr(xla_env, "backend_started", lambda: False)
    for var in ("XLA_FLAGS", "JAX_PLATFORMS"):
        monkeypatch.setenv(var, os.environ.get(var, ""))  # restored after the test
    before = jax.config.jax_default_matmul_precision
    try:
        jax.config.update("jax_default_matmul_precision", None)
        env = bench.configure_environment("gpu", tf32=tf32)
        assert env["JAX_PLATFORMS"] == "cuda"
        want = None if tf32 else "highest"  # tf32: JAX's own GPU default is left as it is
        assert env.get("jax_default_matmul_precision") == want
        assert jax.config.jax_default_matmul_precision == want
        # a precision the user set wins
        jax.config.update("jax_default_matmul_precision", "bfloat16")
        assert bench.configure_environment("gpu")["jax_default_matmul_precision"] == "bfloat16"
    finally:
        jax.config.update("jax_default_matmul_precision", before)

    backends = types.SimpleNamespace(cudnn=types.SimpleNamespace(allow_tf32=not tf32),
                                     cuda=types.SimpleNamespace(matmul=types.SimpleNamespace(
                                         allow_tf32=not tf32)))
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: True),
                                 backends=backends)
    monkeypatch.setitem(sys.modules, "torch", fake)
    bench._configure_torch("gpu", tf32)
    assert backends.cudnn.allow_tf32 is tf32 and backends.cuda.matmul.allow_tf32 is tf32


def test_probe_sweep_puts_layer_tables_first_then_the_grid_by_cost(monkeypatch):
    from jaxeq.bench import harness
    from jaxeq.bench import invariance_sweep as sweep
    seen = []
    monkeypatch.setattr(sweep, "invariance_rows", lambda p, size, n, a, **_: seen.append(
        ("inv", p, size, n, a)) or [])
    monkeypatch.setattr(sweep, "layerwise_rows", lambda p, size, n, **_: seen.append(
        ("layer", p, size, n)) or [])
    monkeypatch.setattr(harness, "rows_or_error", lambda row, group, fn, **_: fn())
    sweep.rows(repeats=1, warmup=0, device="cpu", quick=False, only=None, command="x",
               log=lambda r: None)
    assert seen[:2] == [("layer", "same", 96, 64), ("layer", "full", 96, 64)]
    grid = seen[2:]
    assert len(grid) == 36 and len(set(grid)) == 36
    assert grid[:4] == [("inv", p, 64, 16, a) for p in ("same", "full")
                        for a in ("roll", "translate")]
    size_then_shifts = [(size, n) for _, _, size, n, _ in grid]
    assert size_then_shifts == sorted(size_then_shifts) and grid[-1][2:4] == (128, 256)


def test_only_selects_rows_by_any_of_several_comma_separated_substrings():
    from jaxeq.bench.harness import wanted
    row = "probe/resnet18/same/invariance/roll/S64/96/float32"
    assert wanted(row, None) and wanted(row, "/S64/") and wanted(row, "/S16/,/S64/")
    assert not wanted(row, "/S16/") and not wanted(row, "/S16/,/S256/")


def test_median_s_warms_up_then_times_each_repeat():
    from jaxeq.bench.harness import median_s
    calls = []
    t = median_s(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and isinstance(t, float) and t >= 0.0


@pytest.mark.parametrize("action", ["roll", "translate"])
def test_probe_cell_jax_sides_agree_and_report_the_engines_memory(action):
    """The probe cell's three jaxeq sides on a small net: the engine, the batched forward and the
    fair loop give the same errors, and the memory extras come from the engine's own plan."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    from jaxeq.bench import invariance_sweep as sweep

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.relu(nn.Conv(4, (3, 3), padding="SAME")(x))
            return jnp.mean(nn.Conv(5, (3, 3), padding="SAME")(x), axis=(1, 2))

    net = Net()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 12, 12, 3)), jnp.float32)
    variables = net.init(jax.random.PRNGKey(0), x)
    shifts = np.asarray([[0, 1], [2, -1], [-3, 0]], np.int32)
    engine_call, batched, fair_loop, extra = sweep._jax_sides(net, variables, x, shifts, action)
    errors = engine_call()
    assert errors.shape == (3,) and np.all(errors > 0)
    np.testing.assert_allclose(batched(), errors, rtol=1e-5)
    np.testing.assert_allclose(fair_loop(), errors, rtol=1e-5)
    rows = len(shifts) + 1  # the shifts and the check copy, under the default budget
    assert extra["engine_chunks"] == 1 and extra["engine_rows_per_chunk"] == rows
    assert 0 < extra["engine_working_set_estimate_bytes"]
    assert extra["engine_peak_bytes"] > 0 and extra["batched_forward_peak_bytes"] > 0


def test_compare_settles_fast_sides_only():
    """A side faster than settle_s gets untimed calls of its own before each timed one; a side
    as slow as settle_s gets none."""
    calls = {"fast": 0, "slow": 0}

    def fast():
        calls["fast"] += 1

    def slow():
        calls["slow"] += 1
        time.sleep(0.03)

    rows = harness.compare("unit/settle", "unit", fast, {"slow": slow}, repeats=3, warmup=1,
                           settle_s=0.02)
    assert rows[0]["repeats"] == 3
    assert rows[0]["extra"]["settle_calls"] == {"jaxeq": harness.MAX_SETTLE_CALLS, "torch": 0,
                                                "settle_s": 0.02}
    assert calls["slow"] == 1 + 3  # warm-up, then only timed calls
    assert calls["fast"] == 1 + 3 * (1 + harness.MAX_SETTLE_CALLS)  # a near-zero call: the cap
    assert harness._settle_counts({"a": fast}, 0, 0.02) == {"a": 0}  # nothing timed, no settling
