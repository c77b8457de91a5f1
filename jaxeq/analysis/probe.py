"""The probes behind ``jaxeq probe``: seeded inputs, toy ``jq.chain`` nets, BatchNorm
perturbation, the layer table of one padding/fill variant of a model, and the "which layers
are equivariant, to which shifts?" table of single ops and small nets.

The command line is :mod:`jaxeq.cli.probe`; tables and figures are
:mod:`jaxeq.analysis.probe_render`.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

# Toy jq.chain nets the probe builds itself, besides the registry models.
TOY_NETS = ("toy_cnn", "toy_strided")


def _he_kernel(rng: np.random.Generator, k: int, cin: int, cout: int):
    """A seeded He-normal ``(k, k, cin, cout)`` float32 kernel."""
    import jax.numpy as jnp

    return jnp.asarray(rng.normal(size=(k, k, cin, cout)) * math.sqrt(2 / (k * k * cin)),
                       jnp.float32)


def toy_net(name: str, padding: str, fill: str, channels: int, seed: int = 0):
    """A small ``jq.chain`` net with seeded He-normal kernels (strides declared via partial)."""
    import jax

    import jaxeq as jq

    rng = np.random.default_rng(seed)
    w = partial(_he_kernel, rng)
    conv = partial(jq.conv, padding=padding, fill=fill)
    if name == "toy_cnn":
        return jq.chain(partial(conv, kernel=w(3, channels, 8)), jax.nn.relu,
                        partial(conv, kernel=w(3, 8, 8)), jax.nn.relu,
                        partial(conv, kernel=w(3, 8, 8)), jax.nn.relu,
                        partial(conv, kernel=w(3, 8, 8)), jax.nn.relu, jq.global_max_pool)
    if name == "toy_strided":
        return jq.chain(partial(conv, kernel=w(3, channels, 8)), jax.nn.relu,
                        partial(conv, kernel=w(3, 8, 16), stride=2), jax.nn.relu,
                        partial(conv, kernel=w(3, 16, 16), stride=2), jax.nn.relu,
                        jq.global_avg_pool)
    raise ValueError(f"toy net must be one of {TOY_NETS}, got {name!r}")


def perturb_batchnorm(variables: Any, std: float, seed: int = 0) -> Any:
    """Add N(0, std^2) to every BatchNorm bias (a ``bias`` next to a ``scale``) and running
    ``mean``: the non-zero shifts that training produces."""
    import jax

    rng = np.random.default_rng(seed)

    def walk(tree, bn_like):
        if not hasattr(tree, "items"):
            return tree
        is_bn = "scale" in tree and "bias" in tree
        out = {}
        for k, v in tree.items():
            if hasattr(v, "items"):
                out[k] = walk(v, bn_like)
            elif (k == "bias" and is_bn) or (k == "mean" and bn_like):
                out[k] = v + jax.numpy.asarray(rng.normal(size=v.shape) * std, v.dtype)
            else:
                out[k] = v
        return out

    return {col: walk(tree, col == "batch_stats") for col, tree in variables.items()}


def probe_input(size, channels: int, batch: int, action: str, margin: int,
                seed: int) -> np.ndarray:
    """Seeded random inputs; for ``translate`` on a zero canvas with a zero margin.

    ``size``: an int (square image) or a tuple of spatial sizes (e.g. (T, H, W) for video).
    """
    spatial = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    rng = np.random.default_rng(seed)
    x = np.zeros((batch, *spatial, channels), np.float32)
    m = margin if action == "translate" else 0
    if 2 * m >= min(spatial):
        raise ValueError(f"input size {spatial} leaves no content inside a zero margin of {m} "
                         f"(--margin); use a larger --size/--frames or a smaller --margin")
    inner = tuple(slice(m, n - m) for n in spatial)
    x[(slice(None), *inner)] = rng.normal(size=(batch, *(n - 2 * m for n in spatial), channels))
    return x


def build_variant(model_name: str, padding: str, fill: str, x: np.ndarray, *,
                  bn_shift: float = 0.0, seed: int = 0):
    """``(model, variables)`` of one padding/fill variant of a registry model, initialised
    (seeded) on ``x`` and with ``bn_shift`` applied; ``(chain net, None)`` for a toy net."""
    import jax

    if model_name in TOY_NETS:
        return toy_net(model_name, padding, fill, x.shape[-1], seed), None
    from jaxeq import models

    model = models.get(model_name, padding=padding, fill=fill)
    variables = model.init(jax.random.key(seed), x, train=False)
    if bn_shift:
        variables = perturb_batchnorm(variables, bn_shift, seed)
    return model, variables


def probe_variant(model_name: str, padding: str, fill: str, x: np.ndarray, shifts: Any, *,
                  action: str, border: int, bn_shift: float, chunk: int | None, seed: int,
                  error_maps: bool = True) -> list[dict]:
    """Layer-by-layer rows for one padding/fill variant of a registry model or toy net."""
    from jaxeq.analysis.layerwise import layerwise_equivariance

    model, variables = build_variant(model_name, padding, fill, x, bn_shift=bn_shift,
                                     seed=seed)
    return layerwise_equivariance(model, variables, x, shifts, action=action, border=border,
                                  chunk_size=chunk, error_maps=error_maps)


def worst_case_variant(model_name: str, padding: str, fill: str, x: np.ndarray, shifts: Any,
                       *, action: str, bn_shift: float, chunk: int | None,
                       seed: int) -> dict:
    """Worst-case shift metrics (:func:`jaxeq.analysis.worst_case.worst_case_shifts`, the
    unshifted predictions as labels; a toy net's pooled features serve as its logits) of one
    variant, as a JSON-ready dict with the flip map on the shift grid."""
    from jaxeq.analysis.worst_case import shift_map, worst_case_shifts

    model, variables = build_variant(model_name, padding, fill, x, bn_shift=bn_shift,
                                     seed=seed)
    if variables is None:
        res = worst_case_shifts(model, x, shifts, action=action, chunk_size=chunk)
    else:  # the weights as jit arguments, not as constants folded into the program
        res = worst_case_shifts(partial(model.apply, train=False), x, shifts,
                                params=variables, action=action, chunk_size=chunk)
    host = np.asarray(shifts)
    grid, axes = shift_map(host, res.flip_map) if host.shape[1] == 2 else (None, None)
    return {"n_images": int(x.shape[0]), "n_shifts": int(len(host)),
            "worst_case_consistency": res.worst_case_accuracy,
            "consistency": res.consistency, "mac": res.mac,
            "max_flip_fraction": float(np.max(res.flip_fraction)),
            "flip_fraction": res.flip_fraction.tolist(),
            "flip_map": None if grid is None else grid.tolist(),
            "flip_map_axes": None if axes is None else [a.tolist() for a in axes]}


def lie_variant(model_name: str, padding: str, fill: str, x: np.ndarray, *, action: str,
                bn_shift: float, seed: int) -> list[dict]:
    """Each layer's share of the Lie derivative of translation
    (:func:`jaxeq.analysis.lie.lie_attribution`) of one variant, JSON-ready: ``path``,
    ``share``, ``norm`` (mean over images); the last row "(total)" has the network's norm."""
    from jaxeq.analysis.lie import lie_attribution

    model, variables = build_variant(model_name, padding, fill, x, bn_shift=bn_shift,
                                     seed=seed)
    rows = lie_attribution(model, variables, x, action=action)
    return [{"path": r["path"], "share": float(r["share"]), "norm": float(np.mean(r["norm"]))}
            for r in rows]


def padding_report_variant(model_name: str, padding: str, fill: str, x: np.ndarray, *,
                           sizes: Any, value: float, bn_shift: float, seed: int) -> dict:
    """The padding report of one variant of a registry model: the layer rows
    (:func:`jaxeq.analysis.padding_report.layer_pads`), the sizes among ``sizes`` with no
    uneven layer, and the spatial-bias maps of its layers for the constant input ``value``."""
    from jaxeq.analysis import padding_report as pr

    model, variables = build_variant(model_name, padding, fill, x, bn_shift=bn_shift,
                                     seed=seed)
    rows = pr.layer_pads(model, x.shape)
    maps = pr.bias_maps(pr.model_features(model, variables), x.shape, value=value)
    return {"layers": rows, "even_sizes": pr.even_sizes(model, x.shape, sizes),
            "bias_maps": {r.path: maps[r.path] for r in rows if r.path in maps},
            "bias_width": {r.path: pr.bias_border_width(maps[r.path]) for r in rows
                           if r.path in maps}}


# Shift sets of the questions table: (column, action, max shift, subgroup only).
QUESTION_COLUMNS = (("roll s=stride*k |s|<=4", "roll", 4, True),
                    ("roll all |s|<=3", "roll", 3, False),
                    ("roll all |s|<=16", "roll", 16, False),
                    ("translate s=stride*k |s|<=4", "translate", 4, True),
                    ("translate all |s|<=3", "translate", 3, False),
                    ("translate all |s|<=16", "translate", 16, False))


def question_rows(seed: int = 0):
    """(name, fn, kind, stride) for the questions table: single ops (equivariance of the map)
    and small nets ending in global pooling (invariance of the output)."""
    import jax

    import jaxeq as jq
    from jaxeq.models.stem import pool_fill

    rng = np.random.default_rng(seed)
    w1, w2, w3 = (_he_kernel(rng, 3, cin, 8) for cin in (3, 8, 8))
    c = lambda wt, **kw: partial(jq.conv, kernel=wt, **kw)  # noqa: E731
    rows = [
        ("conv 3x3 same-zeros s1", c(w1), "equi", 1),
        ("conv 3x3 same-circular s1", c(w1, fill="circular"), "equi", 1),
        ("conv 3x3 same-reflect s1", c(w1, fill="reflect"), "equi", 1),
        ("conv 3x3 full-zeros s1", c(w1, padding="full"), "equi", 1),
        ("conv 3x3 valid s1", c(w1, padding="valid"), "equi", 1),
        ("conv 3x3 same-circular s2", c(w1, fill="circular", stride=2), "equi", 2),
        ("conv 3x3 full-zeros s2", c(w1, padding="full", stride=2), "equi", 2),
        ("max_pool 2 s2", partial(jq.max_pool, window=2), "equi", 2),
        ("avg_pool 2 s2", partial(jq.avg_pool, window=2), "equi", 2),
        ("blur_pool 3 s2 circular", partial(jq.blur_pool, fill="circular"), "equi", 2),
    ]

    def net(padding, fill, sub, pool, bias=0.0):
        def sub_fn(v):
            if sub == "max":
                return jq.max_pool(v, 2, fill=pool_fill(fill))
            if sub == "aps":
                return jq.aps_pool(v)
            return v
        return jq.chain(c(w1, padding=padding, fill=fill), lambda v: jax.nn.relu(v + bias),
                        sub_fn, c(w2, padding=padding, fill=fill), jax.nn.relu, sub_fn,
                        c(w3, padding=padding, fill=fill), jax.nn.relu, pool)

    gap, gmp = jq.global_avg_pool, jq.global_max_pool
    rows += [
        ("net same-zeros, maxpool s2 x2, GAP", net("same", "zeros", "max", gap), "inv", 4),
        ("net same-circular, maxpool s2 x2, GAP", net("same", "circular", "max", gap), "inv", 4),
        ("net same-circular, APS s2 x2, GAP", net("same", "circular", "aps", gap), "inv", 4),
        ("net same-circular s1, GAP", net("same", "circular", None, gap), "inv", 1),
        ("net same-zeros s1, global max (rook)", net("same", "zeros", None, gmp), "inv", 1),
        ("net full-zeros s1, global max", net("full", "zeros", None, gmp), "inv", 1),
        ("net full-zeros s1 + bias 0.1, global max", net("full", "zeros", None, gmp, 0.1),
         "inv", 1),
    ]
    return rows


def questions_table(size: int = 48, seed: int = 0):
    """Max relative L2 error per op/net (rows) and shift set (columns), measured with
    jq.equivariance_error (single ops) and jq.invariance_error (nets with global pooling)."""
    import jaxeq as jq

    table = []
    for name, fn, kind, stride in question_rows(seed):
        cells = []
        for _, action, m, subgroup in QUESTION_COLUMNS:
            margin = m if action == "translate" else 0
            x = probe_input(size, 3, 2, action, margin, seed)
            shifts = np.asarray(jq.shift_grid(m))
            if subgroup:
                shifts = shifts[np.all(shifts % stride == 0, axis=1)]
            elif kind == "equi" and stride > 1:
                cells.append(None)  # outside the subgroup equivariance is undefined
                continue
            if kind == "equi":
                err = jq.equivariance_error(fn, x, shifts, action=action, out_stride=stride)
            else:
                err = jq.invariance_error(fn, x, shifts, action=action)
            cells.append(float(np.nanmax(err)))
        table.append((name, cells))
    return table


POSITION_TEST_SETS = ("photos", "black", "white", "noise")


def position_inputs(size: int, *, n_train: int = 10, n_test: int = 4, n_synthetic: int = 8,
                    seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Inputs of the position readout: ``n_train`` training crops per photo_id class (the
    embedded photographs) to fit it on, and the test sets it is scored on: ``n_test`` held-out
    crops per class, and ``n_synthetic`` black, white and uniform-noise images, all normalised
    as the experiments normalise uint8 images. Crops are at most the photo blocks' size; larger
    ``size`` resizes them bilinearly."""
    import jax

    from jaxeq.data import normalise_uint8
    from jaxeq.data.photo_id import BLOCK, photo_crops

    crop = min(size, BLOCK)
    train, _, _ = photo_crops("train", n_train, crop, seed)
    test, _, _ = photo_crops("test", n_test, crop, seed)
    g = np.random.default_rng(seed)
    k = n_synthetic
    tests = {"photos": test, "black": np.zeros((k, size, size, 3), np.uint8),
             "white": np.full((k, size, size, 3), 255, np.uint8),
             "noise": g.integers(0, 256, (k, size, size, 3)).astype(np.uint8)}

    def prepared(images):
        x = normalise_uint8(images)
        if x.shape[1] != size:
            x = np.asarray(jax.image.resize(x, (len(x), size, size, 3), "bilinear"))
        return x

    return prepared(train), {k: prepared(v) for k, v in tests.items()}


def position_layers(model: Any, variables: Any, x: np.ndarray) -> tuple[Any, list[str]]:
    """``(feature_fn, layers)`` of the position readout: ``feature_fn(x) -> {layer: map}`` of
    a registry model's top-level modules (or a chain net's elements) whose outputs keep two
    spatial dims, in execution order."""
    import jax

    from jaxeq.analysis.layerwise import _adapt
    from jaxeq.analysis.precision import measure_jit

    features, specs, _, layout = _adapt(model, variables, x, {"train": False})
    shapes = layout.shapes if layout is not None else jax.eval_shape(
        features, jax.ShapeDtypeStruct(x.shape, x.dtype))
    layers = [name for name, spec in specs.items()
              if spec != "invariant" and "/" not in name and len(shapes[name].shape) == 4]
    jitted = measure_jit(features)
    return (lambda v: {k: val for k, val in jitted(v).items() if k in layers}), layers


def summarise_position(rows: list[dict], test_sets=POSITION_TEST_SETS) -> dict:
    """Per test set: SPC and MAE of the all-layer readout, averaged over the targets."""
    out = {}
    for t in test_sets:
        mine = [r for r in rows if r["layer"] == "all" and r["test"] == t]
        out[t] = {"spc": float(np.mean([r["spc"] for r in mine])),
                  "mae": float(np.mean([r["mae"] for r in mine]))}
    return out


def position_variant(model_name: str, padding: str, fill: str, size: int, *, bn_shift: float,
                     seed: int, grid: int = 12, n_train: int = 10, n_test: int = 4) -> dict:
    """Position information (:mod:`jaxeq.analysis.position`) of one variant at its seeded
    initialisation: the all-layer summary per test set, every readout row, and the border
    reach per layer, JSON-ready."""
    from jaxeq.analysis import position

    train_x, tests = position_inputs(size, n_train=n_train, n_test=n_test, seed=seed)
    model, variables = build_variant(model_name, padding, fill, train_x[:1], bn_shift=bn_shift,
                                     seed=seed)
    features, layers = position_layers(model, variables, train_x[:1])
    rows = position.position_information(features, train_x, tests, layers=layers, grid=grid)
    reach = position.border_reach(features, train_x, tests["photos"], layers=layers, grid=grid)
    return {"layers": layers, "summary": summarise_position(rows), "rows": rows,
            "border_reach": reach}
