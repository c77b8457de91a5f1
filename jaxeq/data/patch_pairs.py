"""The CPU analog of Brown / PhotoTour: patches of known correspondence cut from photographs.

E4b's real data (:mod:`jaxeq.data.phototour`) are 64x64 views of 3D points; what a
descriptor must learn is to tell views of one point from views of others across viewpoint and
illumination changes. Here a "point" is a place in one of the photographs embedded in
scikit-image (:func:`jaxeq.data.quadrant_imagenet.embedded_photos`, in grayscale; NOT
PhotoTour), and a "view" of it is a 64x64 patch rendered through a random affine map around
that place (rotation, scale, anisotropy, a shift of a few pixels: a small viewpoint change)
with a random gain and bias and pixel noise (an illumination change), then resized to 32x32
as PhotoTour's patches are (:func:`jaxeq.data.phototour.resize_half`). Views of one point are
therefore known correspondences.

Scenes: :data:`TEST_PHOTOS` are the test scene, every other photograph the training scene, so
the test pairs come from photographs the network never saw (as PhotoTour trains on one scene
and tests on the others). Points are drawn where the 64x64 surroundings have texture (std of
at least :data:`MIN_STD` levels) and at least :data:`MARGIN` pixels from the border.

Everything is deterministic from its seed (numpy generators from ``(seed, tag, ...)``).
"""
from __future__ import annotations

import functools

import numpy as np

from jaxeq import _checks
from jaxeq.data._common import rng
from jaxeq.data.phototour import TILE, resize_half

TEST_PHOTOS = ("camera", "coins", "moon", "coffee")
MARGIN = 60            # px from the photo border: room for a rotated, enlarged 64x64 window
MIN_STD = 12.0         # grey levels: a point's identity window must have texture
MAX_ROTATION = 20.0    # degrees
SCALE_RANGE = (0.8, 1.25)
MAX_ANISOTROPY = 0.1   # relative stretch of one axis against the other
MAX_SHIFT = 2.0        # px, the keypoint's localisation error
GAIN_RANGE = (0.7, 1.3)
MAX_BIAS = 25.0        # grey levels
NOISE_STD = 3.0        # grey levels


@functools.cache
def _gray_photos(test: bool) -> tuple[tuple[str, np.ndarray], ...]:
    from jaxeq.data.quadrant_imagenet import embedded_photos

    return tuple((name, img.astype(np.float32).mean(axis=-1)) for name, img in embedded_photos()
                 if (name in TEST_PHOTOS) == test)


def _points(photos, n: int, g: np.random.Generator) -> list[tuple[int, float, float]]:
    """``n`` textured places (photo index, y, x), photos drawn in proportion to their area."""
    areas = np.array([(p.shape[0] - 2 * MARGIN) * (p.shape[1] - 2 * MARGIN) for _, p in photos], float)
    out = []
    h = TILE // 2
    while len(out) < n:
        k = int(g.choice(len(photos), p=areas / areas.sum()))
        img = photos[k][1]
        y = float(g.uniform(MARGIN, img.shape[0] - MARGIN))
        x = float(g.uniform(MARGIN, img.shape[1] - MARGIN))
        if img[int(y) - h:int(y) + h, int(x) - h:int(x) + h].std() >= MIN_STD:
            out.append((k, y, x))
    return out


def _view(img: np.ndarray, y: float, x: float, g: np.random.Generator) -> np.ndarray:
    """One uint8 64x64 view of the place (y, x) under a random affine map and illumination."""
    from scipy.ndimage import map_coordinates

    theta = np.deg2rad(g.uniform(-MAX_ROTATION, MAX_ROTATION))
    s = np.exp(g.uniform(*np.log(SCALE_RANGE)))
    a = g.uniform(-MAX_ANISOTROPY, MAX_ANISOTROPY)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    m = rot @ np.diag([s * (1 + a), s / (1 + a)])
    u = np.arange(TILE, dtype=np.float64) - (TILE - 1) / 2
    grid = np.stack(np.meshgrid(u, u, indexing="ij")).reshape(2, -1)
    src = m @ grid + np.array([[y], [x]]) + g.uniform(-MAX_SHIFT, MAX_SHIFT, size=(2, 1))
    patch = map_coordinates(img, src, order=1, mode="reflect").reshape(TILE, TILE)
    patch = patch * g.uniform(*GAIN_RANGE) + g.uniform(-MAX_BIAS, MAX_BIAS)
    patch = patch + g.normal(0.0, NOISE_STD, size=patch.shape)
    return np.clip(np.rint(patch), 0, 255).astype(np.uint8)


def render(points: int, views: int, *, test: bool, seed: int) -> dict:
    """``{"patches": uint8 (points * views, 32, 32), "labels": point index per patch,
    "origin": (photo name, y, x) per point}``: ``views`` views of each of ``points`` places
    of the training (or test) photographs, point-major."""
    points = _checks.int_at_least("points", points, 2)
    views = _checks.int_at_least("views", views, 2)
    photos = _gray_photos(bool(test))
    g = rng(seed, 51, int(test))
    places = _points(photos, points, g)
    big = np.empty((points * views, TILE, TILE), np.uint8)
    for i, (k, y, x) in enumerate(places):
        for v in range(views):
            big[i * views + v] = _view(photos[k][1], y, x, g)
    return {"patches": resize_half(big), "labels": np.repeat(np.arange(points), views),
            "origin": [(photos[k][0], round(y, 1), round(x, 1)) for k, y, x in places]}


def pair_set(points: int, *, seed: int = 0) -> dict:
    """The test set: two views of each of ``points`` test-photo places; ``points`` matching
    pairs (the two views of a place) and ``points`` non-matching ones (a view of place i and
    one of a random other place), as PhotoTour's 50/50 m50 lists. ``{"patches", "labels",
    "matches": int64 (2 * points, 3) rows (patch 1, patch 2, 1 if they match)}``."""
    data = render(points, 2, test=True, seed=seed)
    g = rng(seed, 52)
    i = np.arange(points)
    other = (i + g.integers(1, points, size=points)) % points
    match = np.stack([2 * i, 2 * i + 1, np.ones_like(i)], axis=1)
    non = np.stack([2 * i + g.integers(0, 2, size=points), 2 * other + g.integers(0, 2, size=points),
                    np.zeros_like(i)], axis=1)
    data["matches"] = np.concatenate([match, non]).astype(np.int64)
    return data


__all__ = ["TEST_PHOTOS", "pair_set", "render"]
