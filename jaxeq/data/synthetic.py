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
                    "train_first1000_dissimilar", "heldout", "heldout_dissimilar")
RED_GREEN_GENERATORS = ("jaxeq", "official")
RED_GREEN_SIZES = {"train": 2000, "val": 1000, "test": 1000, "heldout": 1000}
BOX = 4                    # box side (pixels)
UPPER_BAND = (3, 10)       # class 0: y of both boxes (inclusive)
LOWER_BAND = (19, 26)      # class 1
LEFT_X = (0, 9)            # x of the left box (inclusive); the right box: x in [left + 5, 27]
RIGHT_X_MAX = 27
BAND_SHIFT = 16            # 'dissimilar': class 0 moves down 16 px, class 1 up 16 px
PAPER_DATA_SEED = 1988     # the official run's numpy seed
_STREAM = {"train": 0, "val": 1, "test": 2, "heldout": 2}


def _jaxeq_boxes(seed: int, stream: int, n: int):
    """(labels, ys (n, 2) red/green top rows, x_left, x_right) from an independent stream."""
    g = rng(seed, 2, stream)
    labels = np.arange(n) % 2
    lo = np.where(labels == 0, UPPER_BAND[0], LOWER_BAND[0])
    ys = lo[:, None] + g.integers(0, UPPER_BAND[1] - UPPER_BAND[0] + 1, size=(n, 2))
    x_left = g.integers(LEFT_X[0], LEFT_X[1] + 1, size=n)
    x_right = g.integers(x_left + BOX + 1, RIGHT_X_MAX + 1)
    return labels, ys, x_left, x_right


def _official_boxes(seed: int, n: int):
    """The official generator's boxes (Exp2 ``gen_box_data``), draw for draw.

    numpy's legacy ``RandomState`` stream is frozen, so the same calls in the same order give
    the paper's exact images: per sample the left box's x in [0, 10), its y offset in [-4, 4)
    around the band centre (7 or 23), then the right box's x in [x_left, 28) and its y offset,
    both redrawn until the boxes are >= 5 px apart in x.
    """
    r = np.random.RandomState(seed)
    half = (UPPER_BAND[1] - UPPER_BAND[0] + 1) // 2          # offsets in [-4, 4)
    labels = np.arange(n) % 2
    ys = np.zeros((n, 2), np.int64)
    x_left, x_right = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i in range(n):
        centre = (UPPER_BAND[0] if i % 2 == 0 else LOWER_BAND[0]) + half
        xl = r.randint(LEFT_X[1] + 1)
        yl = r.randint(-half, half) + centre
        while True:
            xr = r.randint(xl, RIGHT_X_MAX + 1)
            yr = r.randint(-half, half) + centre
            if xr - xl >= BOX + 1:
                break
        # class 0: red is the left box; class 1: green is
        ys[i] = (yl, yr) if i % 2 == 0 else (yr, yl)
        x_left[i], x_right[i] = xl, xr
    return labels, ys, x_left, x_right


def red_green(split: str = "train", seed: int = 0, *, size: int | None = None,
              generator: str = "jaxeq") -> ArraySource:
    """SPEC E2: 32x32x3 black images holding a 4x4 red box (channel 0 = 1) and a 4x4 green box
    (channel 1 = 1).

    Class 0: red left of green, both boxes' top rows y in [3, 10]; class 1: green left of red,
    y in [19, 26]. Each box's y is drawn independently; the left box's x is in [0, 9] and the
    right box's x in [left + 5, 27] (all ranges inclusive; boxes never overlap). Classes
    alternate (sample i has label i % 2). Default sizes: train 2000, val / test / heldout 1000;
    ``size`` overrides the number of samples (quick runs).

    ``*_dissimilar`` is a set with class 0 moved down 16 px and class 1 moved up 16 px, so the
    absolute bands are swapped while relative order (the true cue) is kept. ``train_first1000``
    (and its band swap) are the first 1000 images of ``train`` (all of them if ``size`` < 1000).

    ``generator``:

    - ``"official"``: the paper's data set, image for image (``seed`` is the numpy seed; the
      official run used 1988, :data:`PAPER_DATA_SEED`). The official generator reseeds for
      every set, so ``val`` and ``test`` are the first 1000 training images, exactly what the
      paper validated and tested on (and ``test_dissimilar`` their band swap).
    - ``"jaxeq"``: train, val and test from independent random streams of ``seed``.

    ``heldout`` (and ``heldout_dissimilar``) is, for both generators, 1000 images drawn
    independently of the training set (jaxeq's stream; for ``"jaxeq"`` it equals ``test``).
    The same arguments always give identical bytes.
    """
    check_split(split, RED_GREEN_SPLITS, "red_green")
    seed = check_int("seed", seed, 0)
    if generator not in RED_GREEN_GENERATORS:
        raise ValueError(f"generator must be one of {RED_GREEN_GENERATORS}, got {generator!r}")
    swapped = split.endswith("_dissimilar")
    base = split.removesuffix("_dissimilar")
    if generator == "official" and base in ("val", "test"):
        base = "train_first1000"     # the official val and similar-test sets
    if base == "train_first1000":
        n_draw = RED_GREEN_SIZES["train"] if size is None else check_int("size", size, 1)
        n = min(n_draw, 1000)
        stream_base = "train"
    else:
        n_draw = n = RED_GREEN_SIZES[base] if size is None else check_int("size", size, 1)
        stream_base = base
    if generator == "official" and stream_base == "train":
        labels, ys, x_left, x_right = _official_boxes(seed, n_draw)
    else:
        labels, ys, x_left, x_right = _jaxeq_boxes(seed, _STREAM[stream_base], n_draw)
    # a prefix of the training draw keeps exactly the training set's first images
    labels, ys, x_left, x_right = labels[:n], ys[:n], x_left[:n], x_right[:n]
    if swapped:
        ys = ys + np.where(labels == 0, BAND_SHIFT, -BAND_SHIFT)[:, None]
    images = np.zeros((n, 32, 32, 3), np.float32)
    for i in range(n):
        red_x, green_x = (x_left[i], x_right[i]) if labels[i] == 0 else (x_right[i], x_left[i])
        images[i, ys[i, 0]:ys[i, 0] + BOX, red_x:red_x + BOX, 0] = 1.0
        images[i, ys[i, 1]:ys[i, 1] + BOX, green_x:green_x + BOX, 1] = 1.0
    bands = ("lower", "upper") if swapped else ("upper", "lower")
    return ArraySource(images, labels, num_classes=2,
                       description=f"E2 red-green ({split}, {generator} generator): red left of "
                                   f"green (0) in the {bands[0]} band vs green left of red (1) "
                                   f"in the {bands[1]} band")
