"""The Brown / PhotoTour patch data set (Liberty, Notre Dame, Yosemite) from a local folder.

E4b (patch matching, HardNet) trains on one scene and measures FPR at 95% recall on the 100k
match / non-match pairs of the other two. Nothing is downloaded: the user unpacks the scenes
(e.g. ``liberty.zip``) into ``ROOT/<scene>/``, each folder holding

- ``patchNNNN.bmp``: 1024x1024 grayscale bitmaps, each a 16 x 16 grid of 64x64 patches in
  row-major order, the files in name order (patch index = 256 * file + 16 * row + column);
- ``info.txt``: one line per patch, its first field the id of the 3D point it shows (the
  number of lines is the number of patches; the last bitmap is only partly filled);
- ``m50_100000_100000_0.txt``: the 100k test pairs, one per line
  ``patch1 point1 _ patch2 point2 _ _``; a pair matches when point1 == point2.

This is the layout torchvision's ``PhotoTour`` reads. :func:`resize_half` takes the 64x64
patches to HardNet's 32x32 input as the official ``cv2.resize(..., (32, 32), INTER_LINEAR)``:
a half-size bilinear resize with pixel-centre alignment samples every output pixel exactly
between four input pixels, i.e. the mean of each 2x2 block (rounded to uint8 as cv2 does).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from jaxeq import _checks

SCENES = ("liberty", "notredame", "yosemite")
TILE = 64                       # patch side in the bitmaps
GRID = 16                       # patches per bitmap side
INFO_FILE = "info.txt"
MATCH_FILE = "m50_100000_100000_0.txt"
# mean / std of the training patches in [0, 1] units: the official HardNet_fconv.py defaults
# (its transform's Normalize; the network then normalises every patch by its own statistics)
MEAN_IMAGE = 0.443728476019
STD_IMAGE = 0.20197947209


def resize_half(patches: np.ndarray) -> np.ndarray:
    """uint8 (N, 2h, 2w) -> uint8 (N, h, w): each output pixel the rounded mean of a 2x2 block."""
    p = np.asarray(patches)
    n, h, w = p.shape[0], p.shape[1] // 2, p.shape[2] // 2
    blocks = p[:, :2 * h, :2 * w].reshape(n, h, 2, w, 2).astype(np.uint32).sum(axis=(2, 4))
    return ((blocks + 2) // 4).astype(np.uint8)


def to_float(patches: np.ndarray) -> np.ndarray:
    """uint8 (N, h, w) -> float32 (N, h, w, 1), normalised as the official transform."""
    x = np.asarray(patches, np.float32) / 255.0
    return ((x - MEAN_IMAGE) / STD_IMAGE)[..., None]


def scene_dir(root: str | os.PathLike, scene: str) -> Path:
    """``ROOT/<scene>``, checked to hold the three kinds of files (a one-line error naming what
    is missing and what is expected otherwise)."""
    _checks.choice("scene", scene, SCENES)
    d = Path(os.path.expanduser(str(root))) / scene
    expected = (f"expected {d}/ holding patchNNNN.bmp (16x16 tiles of 64x64 patches), {INFO_FILE} "
                f"and {MATCH_FILE} (the Brown/PhotoTour '{scene}' scene unpacked; nothing is "
                f"downloaded)")
    if not d.is_dir():
        raise FileNotFoundError(f"PhotoTour scene folder not found: {expected}")
    missing = [f for f in (INFO_FILE, MATCH_FILE) if not (d / f).is_file()]
    if not _bitmaps(d):
        missing.append("patchNNNN.bmp")
    if missing:
        raise FileNotFoundError(f"PhotoTour scene {scene!r} lacks {', '.join(missing)}: {expected}")
    return d


def _bitmaps(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.name.startswith("patch") and p.suffix == ".bmp")


def read_point_ids(d: Path) -> np.ndarray:
    """int64 (N,): the 3D point id of every patch (first field of each info.txt line)."""
    with open(d / INFO_FILE) as f:
        return np.asarray([int(line.split()[0]) for line in f if line.strip()], np.int64)


def read_matches(d: Path) -> np.ndarray:
    """int64 (M, 3): patch index 1, patch index 2, 1 if they show the same 3D point."""
    rows = []
    with open(d / MATCH_FILE) as f:
        for line in f:
            s = line.split()
            if s:
                rows.append((int(s[0]), int(s[3]), int(s[1] == s[4])))
    return np.asarray(rows, np.int64).reshape(-1, 3)


def read_patches(d: Path, n: int) -> np.ndarray:
    """uint8 (n, 64, 64): the first ``n`` tiles of the bitmaps in name order."""
    from PIL import Image

    out = np.empty((n, TILE, TILE), np.uint8)
    i = 0
    for path in _bitmaps(d):
        with Image.open(path) as im:
            img = np.asarray(im.convert("L"))
        tiles = img[:GRID * TILE, :GRID * TILE].reshape(GRID, TILE, GRID, TILE).swapaxes(1, 2)
        tiles = tiles.reshape(-1, TILE, TILE)[:n - i]
        out[i:i + len(tiles)] = tiles
        i += len(tiles)
        if i == n:
            return out
    raise ValueError(f"{d}: {INFO_FILE} lists {n} patches but the bitmaps hold only {i}")


@functools.lru_cache(maxsize=3)
def load_scene(root: str, scene: str) -> dict:
    """``{"patches": uint8 (N, 32, 32), "labels": int64 point ids (N,), "matches": (M, 3)}``
    of one scene, resized to 32x32 (:func:`resize_half`); cached per (root, scene)."""
    d = scene_dir(root, scene)
    labels = read_point_ids(d)
    patches = resize_half(read_patches(d, len(labels)))
    matches = read_matches(d)
    if matches.size and (matches[:, :2].max() >= len(labels) or matches[:, :2].min() < 0):
        raise ValueError(f"{d / MATCH_FILE} names patch {matches[:, :2].max()} but "
                         f"{INFO_FILE} lists only {len(labels)} patches")
    return {"patches": patches, "labels": labels, "matches": matches}


def training_pairs(labels: np.ndarray, n_triplets: int, batch_size: int, seed: int) -> np.ndarray:
    """int64 (n_triplets, 2): (anchor, positive) patch indices as the official
    ``generate_triplets``: a random 3D point not yet used in the current batch of
    ``batch_size`` (so a batch has distinct points, the in-batch negatives are true
    negatives), two different patches of it. Only points with >= 2 patches are drawn. The
    official third (negative) index is never used by the HardNet loss (it mines the batch), so
    it is not drawn."""
    n_triplets = _checks.int_at_least("n_triplets", n_triplets, 1)
    batch_size = _checks.int_at_least("batch_size", batch_size, 2)
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    points, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    usable = np.flatnonzero(counts >= 2)
    if len(usable) < min(batch_size, n_triplets):
        raise ValueError(f"a batch of {batch_size} distinct points needs at least that many points "
                         f"with two patches; the labels have {len(usable)}")
    g = np.random.default_rng(np.random.SeedSequence([int(seed), 41]))
    out = np.empty((n_triplets, 2), np.int64)
    for b in range(0, n_triplets, batch_size):
        k = min(batch_size, n_triplets - b)
        chosen = usable[g.choice(len(usable), size=k, replace=False)]
        for j, c in enumerate(chosen):
            i1, i2 = g.choice(counts[c], size=2, replace=False)
            out[b + j] = order[starts[c] + i1], order[starts[c] + i2]
    return out


__all__ = ["INFO_FILE", "MATCH_FILE", "MEAN_IMAGE", "SCENES", "STD_IMAGE", "load_scene",
           "read_matches", "read_patches", "read_point_ids", "resize_half", "scene_dir", "to_float",
           "training_pairs"]
