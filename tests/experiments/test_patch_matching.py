"""E4b patch matching: the metric, the loss, the optimizer and schedule against independent
computations, the PhotoTour reader on a fake folder in the real format, and the configs run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from jaxeq.data import patch_pairs, phototour
from jaxeq.train import triplet


# ----------------------------------------------------------------------------- FPR95
def test_fpr95_hand_computed():
    # sorted by distance: labels 1 1 0 1 0 1 0 0 1 0 (5 matches, 5 non-matches).
    # 95% of 5 matches = 4.75 -> the prefix must hold all 5 matches: cumsum reaches 5 at
    # position 8 (0-based), so the prefix is positions 0..7 (the official argmax index 8
    # excludes position 8 itself): non-matches there = 4 (positions 2, 4, 6, 7) of 5 -> 0.8.
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0, 1, 0])
    dist = np.arange(10, dtype=float)
    perm = np.random.default_rng(0).permutation(10)
    assert triplet.fpr_at_95_recall(labels[perm], dist[perm]) == pytest.approx(0.8)
    # recall 0.5: 2.5 matches -> cumsum >= 2.5 first at position 3; prefix 0..2 holds one
    # non-match (position 2) of 5 -> 0.2
    assert triplet.fpr_at_95_recall(labels, dist, recall=0.5) == pytest.approx(0.2)
    # perfectly separated: no false positives
    assert triplet.fpr_at_95_recall([1, 1, 0, 0], [0.1, 0.2, 0.5, 0.9]) == 0.0
    with pytest.raises(ValueError, match="non-match"):
        triplet.fpr_at_95_recall([1, 1], [0.1, 0.2])


# ----------------------------------------------------------------------------- loss
def _loss_loops(a, p, margin=1.0):
    """loss_HardNet (min, anchor swap, triplet margin) written out with loops in float64."""
    n = len(a)
    d = np.array([[np.sqrt(a[i] @ a[i] + p[j] @ p[j] - 2 * a[i] @ p[j] + 1e-6) + 1e-8
                   for j in range(n)] for i in range(n)])
    losses = []
    for i in range(n):
        cands = [d[i, j] for j in range(n) if j != i and d[i, j] >= 0.008] + \
                [d[j, i] for j in range(n) if j != i and d[j, i] >= 0.008]
        losses.append(max(0.0, margin + d[i, i] - min(cands)))
    return float(np.mean(losses))


def test_hardnet_loss_matches_loops():
    g = np.random.default_rng(1)
    a = g.normal(size=(6, 5))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    p = a + 0.3 * g.normal(size=a.shape)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    p[3] = a[4]  # a "negative" at distance ~0: masked as the same patch, as the original
    got = float(triplet.hardnet_loss(np.float32(a), np.float32(p)))
    assert got == pytest.approx(_loss_loops(a, p), rel=1e-4)
    assert float(triplet.hardnet_loss(np.float32(a), np.float32(p), margin=0.5)) == \
        pytest.approx(_loss_loops(a, p, 0.5), rel=1e-4)


def test_sgd_dampened_and_lr_as_pytorch():
    import jax.numpy as jnp

    tx = triplet.sgd_dampened(0.9, 0.9, 0.1)
    p = {"w": jnp.array([1.0, -2.0])}
    state = tx.init(p)
    buf = None
    for g in ([0.5, 1.0], [-1.0, 2.0], [3.0, 0.0]):
        d, state = tx.update({"w": jnp.array(g)}, state, p)
        gg = np.array(g) + 0.1 * np.array(p["w"])   # torch: d_p = g + wd * p
        buf = gg if buf is None else 0.9 * buf + 0.1 * gg
        np.testing.assert_allclose(np.asarray(d["w"]), buf, rtol=1e-6)
    lrs = [float(triplet.hardnet_lr(k, lr=10.0, batch_size=4, n_triplets=8, epochs=2))
           for k in range(4)]
    np.testing.assert_allclose(lrs, [10.0, 10.0, 7.5, 5.0])


# ----------------------------------------------------------------------------- PhotoTour
def _write_scene(root, scene, n_points, per_point, seed):
    from PIL import Image

    g = np.random.default_rng(seed)
    n = n_points * per_point
    tiles = g.integers(0, 256, size=(n, 64, 64), dtype=np.uint8)
    d = root / scene
    d.mkdir(parents=True)
    for f in range(-(-n // 256)):
        sheet = np.zeros((1024, 1024), np.uint8)
        for k, t in enumerate(tiles[256 * f:256 * (f + 1)]):
            sheet[64 * (k // 16):64 * (k // 16 + 1), 64 * (k % 16):64 * (k % 16 + 1)] = t
        Image.fromarray(sheet).save(d / f"patch{f:04d}.bmp")
    points = np.repeat(np.arange(n_points) + 100, per_point)
    (d / "info.txt").write_text("".join(f"{q} 0\n" for q in points))
    rows = [(i, i + 1) for i in range(0, n - 1, per_point)] + [(i, (i + per_point) % n) for i in range(0, n, per_point)]
    (d / "m50_100000_100000_0.txt").write_text(
        "".join(f"{i} {points[i]} 0 {j} {points[j]} 0 0\n" for i, j in rows))
    return tiles, points, rows


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("phototour")
    # yosemite spans two bitmaps (300 patches), so the tile order across files is checked
    written = {s: _write_scene(root, s, n, 2, k) for k, (s, n) in
               enumerate((("yosemite", 150), ("liberty", 12), ("notredame", 12)))}
    return root, written


def test_phototour_reads_the_real_format(fake_root):
    root, written = fake_root
    tiles, points, rows = written["yosemite"]
    scene = phototour.load_scene(str(root), "yosemite")
    ref = tiles.reshape(-1, 32, 2, 32, 2).astype(float).mean(axis=(2, 4))   # 2x2 means
    assert np.abs(scene["patches"].astype(float) - ref).max() <= 0.5
    np.testing.assert_array_equal(scene["labels"], points)
    want = [(i, j, int(points[i] == points[j])) for i, j in rows]
    np.testing.assert_array_equal(scene["matches"], want)
    with pytest.raises(FileNotFoundError, match="info.txt"):
        phototour.scene_dir(root / "nowhere", "liberty")


def test_training_pairs_batches_of_distinct_points():
    labels = np.repeat(np.arange(40), 3)
    pairs = phototour.training_pairs(labels, 50, 16, seed=0)
    assert pairs.shape == (50, 2)
    assert np.all(labels[pairs[:, 0]] == labels[pairs[:, 1]]) and np.all(pairs[:, 0] != pairs[:, 1])
    for b in range(0, 50, 16):
        chunk = labels[pairs[b:b + 16, 0]]
        assert len(set(chunk)) == len(chunk)


def test_patch_pairs_views_and_disjoint_photos():
    d = patch_pairs.render(4, 2, test=False, seed=3)
    assert d["patches"].shape == (8, 32, 32) and d["patches"].dtype == np.uint8
    np.testing.assert_array_equal(d["labels"], [0, 0, 1, 1, 2, 2, 3, 3])
    assert not {o[0] for o in d["origin"]} & set(patch_pairs.TEST_PHOTOS)
    np.testing.assert_array_equal(d["patches"], patch_pairs.render(4, 2, test=False, seed=3)["patches"])
    t = patch_pairs.pair_set(5, seed=0)
    assert {o[0] for o in t["origin"]} <= set(patch_pairs.TEST_PHOTOS)
    m = t["matches"]
    assert m[:, 2].sum() == 5 and np.all((m[:, 0] // 2 == m[:, 1] // 2) == (m[:, 2] == 1))


# ----------------------------------------------------------------------------- configs run
def test_full_config_two_steps_on_fake_phototour(fake_root, tmp_path):
    from jaxeq.experiments import load_config, prepare, run

    root, _ = fake_root
    cfg = load_config("patch_matching:full", [f"--config.train.data.root={root}",
                                              "--config.variants=('same',)", "--config.triplets=(32,)",
                                              "--config.train.batch_size=16",
                                              "--config.train.max_steps=2"])
    prepare(cfg, tmp_path)
    out = run(cfg, tmp_path, log=lambda s: None)
    rec = out["records"][0]
    assert rec["steps"] == 2
    assert set(rec["metrics"]) == {"fpr95", "fpr95_liberty", "fpr95_notredame"}
    assert rec["metrics"]["fpr95"] == pytest.approx(
        (rec["metrics"]["fpr95_liberty"] + rec["metrics"]["fpr95_notredame"]) / 2)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["source"] and res["versions"]["jax"] and (tmp_path / "patch_matching_curve.png").is_file()
    # the checkpoint after the (cut) epoch is there, and a rerun reads the finished cell back
    assert (tmp_path / "cells/same/triplets32/seed0/checkpoints/latest").is_dir()
    again = run(cfg, tmp_path, log=lambda s: None)
    assert again["records"][0]["metrics"] == rec["metrics"]
    cfg2 = load_config("patch_matching:full", [f"--config.train.data.root={root}",
                                               "--config.variants=('same',)", "--config.triplets=(32,)",
                                               "--config.train.batch_size=16", "--config.train.lr=1.0",
                                               "--config.train.max_steps=2"])
    with pytest.raises(ValueError, match="other settings"):
        prepare(cfg2, tmp_path)
    with pytest.raises(ValueError, match="PhotoTour"):
        prepare(load_config("patch_matching:full", [f"--config.train.data.root={tmp_path}/none"]), tmp_path / "x")


def test_quick_end_to_end(tmp_path):
    from jaxeq.experiments import load_config, run

    out = run(load_config("patch_matching:quick"), tmp_path, log=lambda s: None)
    assert {r["cell"]["variant"] for r in out["records"]} == {"same", "full"}
    for r in out["records"]:
        assert 0.0 <= r["metrics"]["fpr95"] <= 100.0 and np.isfinite(r["final_loss"])
    md = (tmp_path / "results.md").read_text()
    assert "CPU analog" in md and "Brown/PhotoTour (paper)" in md and "14.5" in md


def test_cell_resumed_after_an_epoch_equals_an_uninterrupted_one(tmp_path):
    from jaxeq.experiments import load_config
    from jaxeq.experiments import patch_matching_train as pm

    t = pm.cell_train(load_config("patch_matching:quick"), {"variant": "same", "triplets": 32, "seed": 0})
    with t.unlocked():
        t.checkpoint, t.epochs = True, 2
    whole = pm.train_cell(t, tmp_path / "whole", log=lambda s: None)
    with t.unlocked():
        t.max_steps = 2            # stopped after its first epoch (2 steps of 16)
    pm.train_cell(t, tmp_path / "cut", log=lambda s: None)
    with t.unlocked():
        t.max_steps = None         # the same cell again: restores epoch 1, trains epoch 2
    resumed = pm.train_cell(t, tmp_path / "cut", log=lambda s: None)
    assert resumed["steps"] == whole["steps"] == 4
    assert resumed["metrics"] == whole["metrics"]
    assert resumed["final_loss"] == pytest.approx(whole["final_loss"], abs=0)
