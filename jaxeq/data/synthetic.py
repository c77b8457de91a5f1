"""The two generated data sets: Rook (SPEC E0) and Red-Green (SPEC E2). No files, no downloads."""
from __future__ import annotations

import numpy as np

from jaxeq.data._common import ArraySource, check_int, check_split, rng

# A chess rook, 16 rows x 13 columns, drawn here ('#' = 1.0, '+' = 0.5, '.' = 0).
_ROOK = """
##...###...##
##...###...##
#############
+###########+
..#########..
...#######...
...###+###...
...##+++##...
...###+###...
...#######...
...#######...
..#########..
.###########.
.###########.
#############
#############
"""
ROOK_PATCH = np.array([[{"#": 1.0, "+": 0.5, ".": 0.0}[c] for c in row]
                       for row in _ROOK.split()], np.float32)
ROOK_SPLITS = ("train", "val", "test")


def rook(split: str = "train", seed: int = 0, *, size: int = 32) -> ArraySource:
    """SPEC E0: two ``size`` x ``size`` x 1 grayscale images in [0, 1] (not normalised).

    The same 16x13 rook patch (``ROOK_PATCH``) touches the top-left corner (label 0) or the
    bottom-right corner (label 1). Every split is these same two images (train = test in the
    paper); ``seed`` is accepted for a uniform interface and changes nothing.
    """
    check_split(split, ROOK_SPLITS, "rook")
    check_int("seed", seed, 0)
    ph, pw = ROOK_PATCH.shape
    size = check_int("size", size, max(ph, pw))
    images = np.zeros((2, size, size, 1), np.float32)
    images[0, :ph, :pw, 0] = ROOK_PATCH
    images[1, size - ph:, size - pw:, 0] = ROOK_PATCH
    return ArraySource(images, np.array([0, 1]), num_classes=2,
                       description="E0 rook: one patch at the top-left (0) or bottom-right (1)")


# --- Red-Green -----------------------------------------------------------------------------
RED_GREEN_SPLITS = ("train", "val", "test", "test_dissimilar", "train_first1000",
                    "train_first1000_dissimilar")
RED_GREEN_SIZES = {"train": 2000, "val": 1000, "test": 1000}
BOX = 4                    # box side (pixels)
UPPER_BAND = (3, 10)       # class 0: y of both boxes (inclusive)
LOWER_BAND = (19, 26)      # class 1
LEFT_X = (0, 9)            # x of the left box (inclusive); the right box: x in [left + 5, 27]
RIGHT_X_MAX = 27
BAND_SHIFT = 16            # 'dissimilar': class 0 moves down 16 px, class 1 up 16 px
_STREAM = {"train": 0, "val": 1, "test": 2}


def red_green(split: str = "train", seed: int = 0, *, size: int | None = None) -> ArraySource:
    """SPEC E2: 32x32x3 black images holding a 4x4 red box (channel 0 = 1) and a 4x4 green box
    (channel 1 = 1).

    Class 0: red left of green, both boxes' top rows y in [3, 10]; class 1: green left of red,
    y in [19, 26]. Each box's y is drawn independently; the left box's x is in [0, 9] and the
    right box's x in [left + 5, 27] (all ranges inclusive; boxes never overlap). Classes
    alternate (sample i has label i % 2). Default sizes: train 2000, val 1000, test 1000;
    ``size`` overrides the number of samples (quick runs).

    ``test_dissimilar`` is the ``test`` set with class 0 moved down 16 px and class 1 moved up
    16 px, so the absolute bands are swapped while relative order (the true cue) is kept.
    ``train_first1000`` (and ``train_first1000_dissimilar``, its band swap) are the first 1000
    images of ``train`` (all of them if ``size`` < 1000): the official protocol's val and
    similar-test set, so the paper's numbers can be compared like for like.

    Unlike the official generator (whose reseeding made val and the similar test set copies of
    the first 1000 training images), train, val and test here are drawn from independent
    random streams of ``seed``; the same ``seed`` always gives identical bytes.
    """
    check_split(split, RED_GREEN_SPLITS, "red_green")
    seed = check_int("seed", seed, 0)
    base = {"test_dissimilar": "test", "train_first1000": "train",
            "train_first1000_dissimilar": "train"}.get(split, split)
    n = RED_GREEN_SIZES[base] if size is None else check_int("size", size, 1)
    g = rng(seed, 2, _STREAM[base])
    labels = np.arange(n) % 2
    # Both boxes' y in the class's band; one draw per box.
    lo = np.where(labels == 0, UPPER_BAND[0], LOWER_BAND[0])
    ys = lo[:, None] + g.integers(0, UPPER_BAND[1] - UPPER_BAND[0] + 1, size=(n, 2))
    x_left = g.integers(LEFT_X[0], LEFT_X[1] + 1, size=n)
    x_right = g.integers(x_left + BOX + 1, RIGHT_X_MAX + 1)
    swapped = split.endswith("_dissimilar")
    if swapped:
        ys = ys + np.where(labels == 0, BAND_SHIFT, -BAND_SHIFT)[:, None]
    if split.startswith("train_first"):  # drawn as the full train set, then cut: same images
        n = min(n, 1000)
        labels, ys, x_left, x_right = labels[:n], ys[:n], x_left[:n], x_right[:n]
    images = np.zeros((n, 32, 32, 3), np.float32)
    for i in range(n):
        red_x, green_x = (x_left[i], x_right[i]) if labels[i] == 0 else (x_right[i], x_left[i])
        images[i, ys[i, 0]:ys[i, 0] + BOX, red_x:red_x + BOX, 0] = 1.0
        images[i, ys[i, 1]:ys[i, 1] + BOX, green_x:green_x + BOX, 1] = 1.0
    bands = ("lower", "upper") if swapped else ("upper", "lower")
    return ArraySource(images, labels, num_classes=2,
                       description=f"E2 red-green ({split}): red left of green (0) in the {bands[0]} "
                                   f"band vs green left of red (1) in the {bands[1]} band")
