"""How much absolute position a frozen network's features encode, and how far from the border.

The readout follows Islam et al. (ICLR 2020, "How much position information do CNNs encode?"):
features of a frozen backbone are resized to a common grid and a readout is fitted to predict a
position map (a horizontal or vertical gradient, a centred Gaussian, stripes) that is the same
for every image; it is scored on other images (held-out photographs, and black, white and noise
inputs) by Spearman's rank correlation (SPC, higher = more position) and the mean absolute error
(MAE). The target does not depend on the content, so any skill of the readout is position
information carried by the features.

Differences from the paper, and why:

- The readout is per-pixel linear (a 1x1 conv fitted in closed form by ridge regression), not
  a trained 3x3 conv: a 3x3 readout with zero padding would read position from its own border;
  a 1x1 one adds none, so what it finds is in the features.
- Features are resized bilinearly (``jax.image.resize``) to ``grid x grid``; a constant map
  stays constant, so the resize adds no position either. Maps of 'full' layers, which grow past
  the input, are resized whole: positions are relative to each map's own extent.

:func:`border_reach` asks the paper's question per layer: binned by the distance of a grid
cell's centre to the nearest image edge (in input pixels), the readout's MAE on the horizontal
and vertical gradients relative to chance (the MAE of predicting the training mean of the
target in that bin); below 1 the layer tells where it is, at that distance from the border.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxeq import _checks

TARGETS = ("horizontal", "vertical", "gaussian", "horizontal_stripes", "vertical_stripes")
STRIPES = 4  # periods of the stripe targets across the grid
# Relative spread below which a feature channel or a prediction counts as constant: float32
# rounding makes a mathematically constant map vary by ~1e-7 of its size, and standardising
# (or ranking) that noise would invent position information.
FLOAT_NOISE = 1e-5


def position_target(kind: str, grid: int) -> np.ndarray:
    """The ``(grid, grid)`` position map ``kind`` (values in [0, 1], the same for every image)."""
    _checks.choice("kind", kind, TARGETS)
    _checks.int_at_least("grid", grid, 2)
    c = (np.arange(grid) + 0.5) / grid  # cell centres in (0, 1)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    if kind == "horizontal":
        return xx
    if kind == "vertical":
        return yy
    if kind == "gaussian":
        return np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / (2 * 0.25 ** 2))
    along = yy if kind == "horizontal_stripes" else xx
    return 0.5 + 0.5 * np.cos(2 * np.pi * STRIPES * along)


def _on_grid(features: Mapping[str, jnp.ndarray], grid: int) -> dict[str, np.ndarray]:
    """Each spatial (N, h, w, c) map resized to (N, grid, grid, c), as float64 numpy."""
    out = {}
    for name, f in features.items():
        if f.ndim != 4:
            continue
        r = jax.image.resize(f.astype(jnp.float32), (f.shape[0], grid, grid, f.shape[-1]),
                             "bilinear")
        out[name] = np.asarray(r, np.float64)
    return out


def fit_readout(features: np.ndarray, target: np.ndarray, *, ridge: float = 1e-3):
    """Closed-form ridge fit of ``target[i, j] ~ features[n, i, j, :] @ w + b`` over all images
    and cells; features standardised per channel first. Returns the readout (mean, std, w, b)."""
    x = np.asarray(features, np.float64).reshape(-1, features.shape[-1])
    mean, std = x.mean(0), x.std(0)
    constant = std <= FLOAT_NOISE * np.abs(mean)
    std = np.where(constant | (std == 0), np.inf, std)  # a constant channel reads as 0
    z = (x - mean) / std
    y = np.broadcast_to(target, features.shape[:-1]).reshape(-1)
    a = np.concatenate([z, np.ones((len(z), 1))], 1)
    reg = ridge * len(z) * np.eye(a.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    coef = np.linalg.solve(a.T @ a + reg, a.T @ y)
    return mean, std, coef[:-1], coef[-1]


def predict(readout, features: np.ndarray) -> np.ndarray:
    mean, std, w, b = readout
    return ((np.asarray(features, np.float64) - mean) / std) @ w + b


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally shaped arrays (average ranks for ties; 0 when
    either is constant up to ``FLOAT_NOISE``)."""
    a, b = np.ravel(a), np.ravel(b)
    for v in (a, b):
        if np.ptp(v) <= FLOAT_NOISE * np.max(np.abs(v)):
            return 0.0
    ra, rb = _ranks(a), _ranks(b)
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return 0.0
    return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb))


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v))
    uniq, inv = np.unique(v, return_inverse=True)
    sums = np.bincount(inv, ranks)
    return (sums / np.bincount(inv))[inv]  # ties share their mean rank


def _layers_of(train: dict, layers: Sequence[str] | None) -> list[str]:
    names = list(train) if layers is None else list(layers)
    for n in names:
        if n not in train:
            raise ValueError(f"layers: {n!r} is not a spatial feature map; have {list(train)}")
    return names


def position_information(feature_fn: Callable, train_x, test_sets: Mapping[str, object], *,
                         layers: Sequence[str] | None = None,
                         targets: Sequence[str] = TARGETS, grid: int = 16,
                         ridge: float = 1e-3) -> list[dict]:
    """One row per (layer, target, test set): ``spc`` (mean over images of Spearman's rank
    correlation of prediction and target) and ``mae``.

    ``feature_fn(x) -> {name: (N, h, w, c)}`` is the frozen backbone (maps without two spatial
    dims are ignored); the readout of each layer (and of all ``layers`` concatenated, row
    ``"all"``) is fitted on ``train_x`` and scored on each of ``test_sets``.
    """
    for t in targets:
        _checks.choice("targets", t, TARGETS)
    train = _on_grid(feature_fn(jnp.asarray(train_x)), grid)
    names = _layers_of(train, layers)
    tests = {k: _on_grid(feature_fn(jnp.asarray(v)), grid) for k, v in test_sets.items()}
    pick = lambda feats: {**{n: feats[n] for n in names},  # noqa: E731
                          "all": np.concatenate([feats[n] for n in names], -1)}
    rows = []
    for layer, feats in pick(train).items():
        for t in targets:
            target = position_target(t, grid)
            readout = fit_readout(feats, target, ridge=ridge)
            for test_name, test_feats in tests.items():
                pred = predict(readout, pick(test_feats)[layer])
                rows.append({"layer": layer, "target": t, "test": test_name,
                             "spc": float(np.mean([spearman(p, target) for p in pred])),
                             "mae": float(np.mean(np.abs(pred - target)))})
    return rows


def _distance_to_border(grid: int, image_size: int) -> np.ndarray:
    """(grid, grid) distance of each cell centre to the nearest image edge, in input pixels."""
    c = (np.arange(grid) + 0.5) * image_size / grid
    d = np.minimum(c, image_size - c)
    return np.minimum(d[:, None], d[None, :])


def border_reach(feature_fn: Callable, train_x, test_x, *, layers: Sequence[str] | None = None,
                 grid: int = 16, bins: Sequence[float] | None = None,
                 ridge: float = 1e-3) -> list[dict]:
    """Per layer and distance bin: ``ratio`` = the readout's MAE on the horizontal and vertical
    gradient targets / chance MAE in that bin (see the module docstring), and ``reach``: the
    largest bin edge up to which every bin has ``ratio < 0.5`` (0 when even the outermost bin
    does not). ``bins`` are distance edges in input pixels (default: quarters of the half-size).
    """
    train_x, test_x = jnp.asarray(train_x), jnp.asarray(test_x)
    size = int(train_x.shape[1])
    half = size / 2
    edges = np.asarray(bins if bins is not None else [0, half / 4, half / 2, 3 * half / 4, half],
                       np.float64)
    dist = _distance_to_border(grid, size)
    train = _on_grid(feature_fn(train_x), grid)
    test = _on_grid(feature_fn(test_x), grid)
    rows = []
    for layer in _layers_of(train, layers):
        err = np.zeros((len(edges) - 1,))
        chance = np.zeros_like(err)
        for t in ("horizontal", "vertical"):
            target = position_target(t, grid)
            pred = predict(fit_readout(train[layer], target, ridge=ridge), test[layer])
            for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
                cells = (dist >= lo) & (dist < hi) if i < len(edges) - 2 else (dist >= lo)
                err[i] += np.mean(np.abs(pred[:, cells] - target[cells]))
                chance[i] += np.mean(np.abs(target[cells] - target[cells].mean()))
        ratio = err / np.maximum(chance, 1e-12)
        reach = 0.0
        for i, r in enumerate(ratio):
            if r >= 0.5:
                break
            reach = float(edges[i + 1])
        rows.append({"layer": layer, "edges": edges.tolist(), "ratio": ratio.tolist(),
                     "reach": reach})
    return rows


def synthetic_inputs(n: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Islam et al.'s content-free test inputs: black, white and uniform noise, (n, s, s, 3)."""
    g = np.random.default_rng(seed)
    return {"black": np.zeros((n, size, size, 3), np.float32),
            "white": np.ones((n, size, size, 3), np.float32),
            "noise": g.uniform(0, 1, (n, size, size, 3)).astype(np.float32)}
