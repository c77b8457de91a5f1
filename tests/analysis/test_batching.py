"""How the engine runs the shifted copies: one real batch (checked for batch independence),
chunks from a memory budget, and vmap for functions that depend on their batch."""
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxeq as jq
from jaxeq.analysis import engine, layerwise


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 3)), jnp.float32)
    return x, w


@pytest.mark.parametrize("action", ["roll", "translate"])
def test_batched_equals_vmapped_for_a_batch_independent_function(data, action):
    x, w = data
    f = partial(jq.conv, kernel=w, padding="full")
    shifts = jq.shift_grid(3)
    kw = dict(action=action, border=2)
    a = jq.equivariance_error(f, x, shifts, batching="batch", **kw)
    b = jq.equivariance_error(f, x, shifts, batching="vmap", **kw)
    c = jq.equivariance_error(f, x, shifts, **kw)  # auto
    for u in (a, c):
        for field in ("total", "interior", "border"):
            np.testing.assert_allclose(getattr(u, field), getattr(b, field), rtol=1e-5,
                                       atol=1e-7)


def _batch_normalised(x):
    """Depends on the whole batch: normalised by the batch's mean and std (BatchNorm in
    training mode without parameters)."""
    axes = (0, 1, 2)
    return (x - jnp.mean(x, axes, keepdims=True)) / (jnp.std(x, axes, keepdims=True) + 1e-5)


def test_a_batch_dependent_function_keeps_exact_per_shift_semantics(data):
    x, _ = data
    shifts = jq.shift_grid(2)
    # translate changes the batch statistics, so one big batch would give other numbers
    exact = jq.equivariance_error(_batch_normalised, x, shifts, action="translate",
                                  batching="vmap")
    auto = jq.equivariance_error(_batch_normalised, x, shifts, action="translate")
    forced = jq.equivariance_error(_batch_normalised, x, shifts, action="translate",
                                   batching="batch")
    np.testing.assert_allclose(auto, exact, rtol=1e-6)
    assert np.max(np.abs(forced - exact)) > 1e-3  # what the check protects against


def _measured(max_all, scale):
    max_all = np.asarray(max_all, np.float32)
    stats = {k: np.zeros_like(max_all) for k in engine.STAT_KEYS}
    stats["max_all"] = max_all
    return engine.Measured(tuple(f"y{i}" for i in range(len(max_all))), stats, {},
                           np.asarray(scale, np.float32), np.ones(len(max_all), np.float32))


def test_batch_independence_check_reads_the_unshifted_copy_of_every_output():
    ok = _measured([[1e-7, 5.0]], [2.0])
    bad = _measured([[1e-2, 0.0]], [2.0])
    assert engine._batch_consistent(ok, np.float32)
    assert not engine._batch_consistent(bad, np.float32)
    assert engine._batch_consistent(bad, jnp.bfloat16)  # 16-bit: a looser float noise
    assert engine._batch_consistent(bad, np.float32, row=1)
    # one output of several off is enough; a NaN in the check row is never consistent
    assert not engine._batch_consistent(_measured([[1e-7], [1e-2]], [2.0, 2.0]), np.float32)
    assert engine._batch_consistent(_measured([[1e-7], [1e-2]], [2.0, 1e3]), np.float32)
    assert not engine._batch_consistent(_measured([[np.nan]], [2.0]), np.float32)


@pytest.mark.parametrize("budget", [1, 10**5])
def test_memory_budget_chunks_and_gives_the_same_numbers(data, budget):
    x, w = data
    f = partial(jq.conv, kernel=w)
    shifts = jq.shift_grid(3)
    whole = jq.equivariance_error(f, x, shifts, action="translate", memory_budget=2**40)
    part = jq.equivariance_error(f, x, shifts, action="translate", memory_budget=budget)
    np.testing.assert_allclose(part, whole, rtol=1e-5, atol=1e-7)


def test_working_set_estimate_counts_nested_calls(data):
    x, w = data

    def inner(v):  # temporaries (the conv output and its exp) larger than its own output
        return jnp.sum(jnp.exp(jq.conv(v, w)) * 2, axis=-1)

    nested = engine._bytes_per_image(lambda v: {"y": jax.jit(inner)(v)}, x)
    inline = engine._bytes_per_image(lambda v: {"y": inner(v)}, x)
    assert nested == inline  # the values inside the nested jit count as if written inline


def test_working_set_estimate_frees_each_value_after_its_last_use():
    x = jax.ShapeDtypeStruct((2, 64, 64, 4), jnp.float32)  # 64 KiB per image and value
    per_image = engine._bytes_per_image(lambda v: {"y": jnp.sin(jnp.cos(jnp.exp(v)))}, x)
    # in order, two values live at once (an op's input and output), never all three:
    # PEAK_MARGIN x 2 values, plus the output again and the input copy
    assert per_image == (engine.PEAK_MARGIN * 2 + 1 + 1) * 64 * 64 * 4 * 4


@pytest.mark.parametrize("padding", ["same", "full"])
def test_working_set_estimate_stays_above_xlas_own_peak_per_image(padding):
    import jaxeq.models
    model = jaxeq.models.get("resnet50", padding=padding, num_classes=10)
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(x.shape),
                                                  train=False))

    def forward(v, z):
        return model.apply(v, z, train=False)

    def xla_bytes(batch):
        z = jax.ShapeDtypeStruct((batch, 32, 32, 3), jnp.float32)
        m = jax.jit(forward).lower(variables, z).compile().memory_analysis()
        return m.temp_size_in_bytes + m.output_size_in_bytes

    estimate = engine._working_set_bytes(jax.make_jaxpr(forward)(variables, x), x)
    xla_per_image = (xla_bytes(4) - xla_bytes(2)) / 2  # what each added image costs XLA
    assert estimate >= xla_per_image > 0
    assert estimate <= 3 * xla_per_image  # near XLA's own cost, not a loose bound


def test_layerwise_batched_equals_vmapped():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.relu(nn.Conv(4, (3, 3), padding="SAME")(x))
            return nn.Conv(2, (3, 3), padding="SAME")(x)

        def feature_strides(self):
            return {"Conv_0": (1, 1), "Conv_1": (1, 1)}

    net = Net()
    x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 12, 12, 3)), jnp.float32)
    v = net.init(jax.random.PRNGKey(0), x)
    shifts = jq.shift_grid(2)
    a = jq.layerwise_equivariance(net, v, x, shifts, action="translate")
    b = jq.layerwise_equivariance(net, v, x, shifts, action="translate", batching="vmap")
    assert [r["path"] for r in a] == [r["path"] for r in b]
    keys = ("mean", "max", "interior", "border")
    assert all(r.get(k) is not None for r in b if r["path"] in ("Conv_0", "Conv_1") for k in keys)
    for ra, rb in zip(a, b):
        assert ra["n_shifts"] == rb["n_shifts"]
        for key in keys:
            if rb.get(key) is not None:
                np.testing.assert_allclose(ra[key], rb[key], rtol=1e-5, atol=1e-7)


def test_layerwise_compiles_once_per_model_and_reads_each_calls_variables():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Conv(3, (3, 3), padding="SAME")(x)

        def feature_strides(self):
            return {"Conv_0": (1, 1)}

    net = Net()
    x = jnp.asarray(np.random.default_rng(4).normal(size=(1, 10, 10, 2)), jnp.float32)
    v1 = net.init(jax.random.PRNGKey(0), x)
    v2 = net.init(jax.random.PRNGKey(1), x)
    shifts = jq.shift_grid(2)
    run = lambda v: [r["max"] for r in jq.layerwise_equivariance(net, v, x, shifts,  # noqa: E731
                                                                   action="translate")]
    engine._features_program.cache_clear()
    first, second = run(v1), run(v2)
    info = engine._features_program.cache_info()
    assert (info.misses, info.hits) == (1, 1)   # one program, reused for new variables
    assert first != second
    engine._features_program.cache_clear()
    assert run(v2) == second                    # what a fresh compile gives for v2


@pytest.mark.parametrize("kwargs,match", [
    ({"batching": "loop"}, "batching"),
    ({"memory_budget": 0}, "memory_budget"),
    ({"memory_budget": 1.5}, "memory_budget"),
])
def test_bad_batching_arguments_name_themselves(data, kwargs, match):
    x, w = data
    with pytest.raises((ValueError, TypeError), match=match):
        jq.equivariance_error(partial(jq.conv, kernel=w), x, jq.shift_grid(1), **kwargs)


def test_layerwise_traces_the_model_once_per_shapes_not_per_call():
    traces = []

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            traces.append(x.shape)  # runs only while JAX traces the model
            return nn.relu(nn.Conv(3, (3, 3), padding="SAME")(x))

        def feature_strides(self):
            return {"Conv_0": (1, 1)}

    net = Net()
    x = jnp.asarray(np.random.default_rng(5).normal(size=(1, 8, 8, 2)), jnp.float32)
    v = net.init(jax.random.PRNGKey(0), x)
    shifts = jq.shift_grid(2)
    engine._features_program.cache_clear()
    engine._aux_layout_cached.cache_clear()
    layerwise._module_specs.cache_clear()
    first = jq.layerwise_equivariance(net, v, x, shifts)
    n_first = len(traces)
    again = jq.layerwise_equivariance(net, jax.tree_util.tree_map(lambda a: a * 2, v), x, shifts)
    assert len(traces) == n_first  # no trace at all on the second call
    assert [r["path"] for r in again] == [r["path"] for r in first] == ["Conv_0", "(output)"]
    x2 = jnp.concatenate([x, x])
    jq.layerwise_equivariance(net, v, x2, shifts)
    # new shapes: traced again (the batch: the shifted copies, the zero shift the check copy)
    assert len(traces) > n_first and traces[-1][0] in (2, 2 * len(shifts))


def test_aux_layout_keeps_the_order_outputs_were_made_in():
    def g(aux, v):
        return {"z": v * aux["s"], "a": v.sum(axis=(1, 2)), "m": v[:, ::2]}

    lay = engine.aux_layout(g, {"s": jnp.float32(2.0)}, jnp.ones((2, 4, 4, 1)))
    assert lay.order == ("z", "a", "m")
    assert lay.shapes["m"].shape == (2, 2, 4, 1) and lay.shapes["a"].shape == (2, 1)
    assert lay.bytes_per_image >= (16 + 1 + 8) * 4  # at least the three outputs per image


class _Device:
    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        if isinstance(self.stats, Exception):
            raise self.stats
        return self.stats


@pytest.mark.parametrize("stats,want", [
    (None, engine.DEFAULT_MEMORY_BUDGET),                                 # a CPU
    (NotImplementedError("no query"), engine.DEFAULT_MEMORY_BUDGET),      # a backend without it
    ({"bytes_limit": 100 * 2**30, "bytes_in_use": 20 * 2**30}, 20 * 2**30),  # a quarter of free
    ({"bytes_limit": 4 * 2**30, "bytes_in_use": 2**30}, engine.DEFAULT_MEMORY_BUDGET),  # floor
])
def test_default_memory_budget_follows_the_devices_free_memory(stats, want):
    assert engine.default_memory_budget(_Device(stats)) == want


def test_the_engine_chunks_by_the_default_budget(data, monkeypatch):
    x, w = data
    f = partial(jq.conv, kernel=w, padding="full")
    shifts = jq.shift_grid(3)  # 49 shifts, the zero shift among them
    per_image = engine._per_image_bytes(("single", f), x)
    chunks = []
    real_program = engine._program

    def spy(features, specs, action, border, chunk, *rest):
        chunks.append(chunk)
        return real_program(features, specs, action, border, chunk, *rest)

    monkeypatch.setattr(engine, "_program", spy)
    engine._single_output_program.cache_clear()
    monkeypatch.setattr(engine, "default_memory_budget", lambda: 3 * per_image * x.shape[0])
    small = jq.equivariance_error(f, x, shifts, out_stride=1, batching="batch")
    monkeypatch.setattr(engine, "default_memory_budget", lambda: 2**40)
    big = jq.equivariance_error(f, x, shifts, out_stride=1, batching="batch")
    engine._single_output_program.cache_clear()
    assert chunks[0] == 3 and chunks[1] > 10
    np.testing.assert_allclose(small, big, rtol=1e-6, atol=1e-7)


def test_an_output_without_the_batch_axis_is_measured_with_vmap_or_refused_by_name():
    x = jnp.asarray(np.random.default_rng(6).normal(size=(1, 6, 6, 2)), jnp.float32)
    f = lambda v: jnp.sum(v * jnp.arange(6.0)[None, :, None, None])  # noqa: E731 a scalar
    shifts = jq.shift_grid(2)
    auto = jq.invariance_error(f, x, shifts)
    np.testing.assert_array_equal(auto, jq.invariance_error(f, x, shifts, batching="vmap"))
    ref = float(f(x))
    want = [abs(float(f(jq.roll(x, s))) - ref) / abs(ref) for s in np.asarray(shifts)]
    np.testing.assert_allclose(auto, want, rtol=1e-4, atol=1e-4)  # |f(x)| is small here
    with pytest.raises(ValueError, match=r"^batching='batch' needs f's output to keep x's batch "
                                         r"axis first .*got shape \(\)"):
        jq.invariance_error(f, x, shifts, batching="batch")


def test_subgroup_rows_cover_each_strides_shifts_once_per_chunk():
    shifts = np.asarray(jq.shift_grid(2), np.int32)  # 25 shifts on [-2, 2]^2
    specs = {"a": (1, 1), "b": (2, 2), "c": (4, 4), "d": (2, 2), "e": "invariant"}
    sel = engine._subgroup_rows(shifts, specs, "roll", chunk=5)
    assert set(sel) == {(2, 2), (4, 4)}  # stride 1 and "invariant": every row, no selection
    rows = np.concatenate([[[0, 0]], shifts])  # row 0: the check copy
    n_chunks, k = engine._chunking(len(rows), 5)
    for stride, idx in sel.items():
        assert idx.shape[0] == n_chunks and idx.dtype == np.int32
        picked = set()
        for c, local in enumerate(idx):
            assert len(set(local)) == len(local)  # distinct: the scatter is well defined
            for i in local:
                r = c * k + i
                if r < len(rows) and np.all(rows[r] % stride == 0):
                    picked.add(r)
        want = {r for r in range(len(rows)) if np.all(rows[r] % stride == 0)}
        assert picked == want and 0 in want  # every subgroup row, the check row among them
        assert idx.shape[1] < k  # fewer comparisons than rows
    assert engine._subgroup_rows(shifts.astype(np.float32), specs, "fractional", 5) == {}


def _downsample(x, w):
    y = jq.conv(x, w, padding="same")
    return y[:, ::2, ::2, :] + y[:, 1::2, 1::2, :]  # stride 2: a shift by 1 is off the subgroup


@pytest.mark.parametrize("action", ["roll", "translate"])
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_comparing_only_subgroup_rows_matches_vmap_nans_included(data, action, chunk_size):
    x, w = data
    f = partial(_downsample, w=w)
    shifts = jq.shift_grid(4)
    kw = dict(action=action, out_stride=2, border=1, chunk_size=chunk_size)
    got = jq.equivariance_error(f, x, shifts, batching="batch", **kw)
    want = jq.equivariance_error(f, x, shifts, batching="vmap", **kw)
    off = np.any(np.asarray(shifts) % 2 != 0, axis=1)
    assert 0 < off.sum() < len(off)
    for g, v in zip(got, want):
        assert np.array_equal(np.isnan(g), off) and np.array_equal(np.isnan(v), off)
        np.testing.assert_allclose(g[~np.isnan(v)], v[~np.isnan(v)], rtol=1e-5, atol=1e-7)
    maps = jq.error_map(f, x, shifts, action=action, out_stride=2, chunk_size=chunk_size)
    ref = jq.error_map(f, x, shifts, action=action, out_stride=2, chunk_size=chunk_size,
                       batching="vmap")
    np.testing.assert_allclose(maps, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("with_zero", [True, False])
def test_a_zero_shift_among_the_shifts_is_the_batch_independence_check(data, monkeypatch,
                                                                       with_zero):
    x, _ = data
    shifts = np.asarray(jq.shift_grid(2))
    if not with_zero:
        shifts = shifts[np.any(shifts != 0, axis=1)]
    copies = []
    real_program = engine._program

    def spy(features, specs, action, border, chunk, want_map, batched, check_copy):
        if batched:
            copies.append(check_copy)
        return real_program(features, specs, action, border, chunk, want_map, batched,
                            check_copy)

    monkeypatch.setattr(engine, "_program", spy)
    engine._single_output_program.cache_clear()
    # batch-dependent: the check must still catch it, from the zero shift's row or the copy
    exact = jq.equivariance_error(_batch_normalised, x, shifts, action="translate",
                                  batching="vmap")
    auto = jq.equivariance_error(_batch_normalised, x, shifts, action="translate")
    forced = jq.equivariance_error(_batch_normalised, x, shifts, action="translate",
                                   batching="batch")
    engine._single_output_program.cache_clear()
    assert copies == [not with_zero]  # auto and batch share one compiled program
    np.testing.assert_allclose(auto, exact, rtol=1e-6)
    assert forced.shape == exact.shape and np.max(np.abs(forced - exact)) > 1e-3


def test_a_batch_independent_function_passes_the_check_from_its_zero_shift_row(data,
                                                                              monkeypatch):
    x, w = data
    f = partial(jq.conv, kernel=w, padding="full")
    shifts = np.asarray(jq.shift_grid(2))[::-1]  # the zero shift in the middle, not first
    modes = []
    real_program = engine._program

    def spy(features, specs, action, border, chunk, want_map, batched, check_copy):
        modes.append((batched, check_copy))
        return real_program(features, specs, action, border, chunk, want_map, batched,
                            check_copy)

    monkeypatch.setattr(engine, "_program", spy)
    engine._single_output_program.cache_clear()
    jq.equivariance_error(f, x, shifts, action="roll")
    engine._single_output_program.cache_clear()
    assert modes == [(True, False)]  # batched, no extra copy, and no fallback to vmap


def test_shifts_as_a_list_numpy_or_jax_array_give_the_same_errors(data):
    x, w = data
    f = partial(jq.conv, kernel=w)
    grid = np.asarray(jq.shift_grid(2))
    kinds = [grid.tolist(), grid.astype(np.int64), jnp.asarray(grid)]
    errs = [jq.equivariance_error(f, x, s, action="translate") for s in kinds]
    for e in errs[1:]:
        np.testing.assert_array_equal(e, errs[0])
    # host shifts stay on the host (the engine reads them there), device ones where they are
    from jaxeq.analysis.actions import check_shifts
    assert isinstance(check_shifts(grid.astype(np.int64), 2), np.ndarray)
    assert check_shifts(grid.astype(np.int64), 2).dtype == np.int32
    assert isinstance(check_shifts(jnp.asarray(grid), 2), jax.Array)
    assert check_shifts(grid, 2, "fractional").dtype == np.float32


def test_comparing_alike_outputs_together_gives_the_same_table(monkeypatch):
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            a = nn.relu(nn.Conv(3, (3, 3), padding="SAME")(x))
            b = nn.relu(nn.Conv(3, (3, 3), padding="SAME")(a))  # alike: a, b, c (stride 1)
            c = nn.Conv(3, (3, 3), padding="SAME")(b)
            return nn.Conv(3, (3, 3), strides=2, padding="SAME")(c + a)  # stride 2, on its own

        def feature_strides(self):
            return {"Conv_0": (1, 1), "Conv_1": (1, 1), "Conv_2": (1, 1), "Conv_3": (2, 2)}

    net = Net()
    x = jnp.asarray(np.random.default_rng(8).normal(size=(1, 8, 8, 2)), jnp.float32)
    v = net.init(jax.random.PRNGKey(0), x)
    shifts = jq.shift_grid(2)
    tables, groups = [], []
    group_outputs = engine._output_groups
    monkeypatch.setattr(engine, "_output_groups", lambda *a: groups.append(
        [names for _, names in group_outputs(*a)]) or group_outputs(*a))
    for together in (False, True):
        monkeypatch.setattr(engine, "GROUP_ALIKE", together)
        engine._features_program.cache_clear()
        tables.append(jq.layerwise_equivariance(net, v, x, shifts, error_maps=True))
    engine._features_program.cache_clear()
    assert groups[0] == [["Conv_0"], ["Conv_1"], ["Conv_2"], ["Conv_3"]]
    assert groups[-1] == [["Conv_0", "Conv_1", "Conv_2"], ["Conv_3"]]
    each, alike = tables
    assert [r["path"] for r in each] == [r["path"] for r in alike]
    for r, q in zip(each, alike):
        for key in ("n_shifts", "mean", "max", "interior", "border"):
            np.testing.assert_allclose(q[key], r[key], rtol=1e-6, equal_nan=True)
        if "error_map" in r:
            np.testing.assert_allclose(q["error_map"], r["error_map"], rtol=1e-6)
