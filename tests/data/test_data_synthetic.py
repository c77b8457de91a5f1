"""Rook (E0) and Red-Green (E2): layout, statistics, determinism, bad input."""
import numpy as np
import pytest

import jaxeq.data as data
from jaxeq.data import synthetic


def test_rook_patch_at_the_two_corners():
    src = data.get("rook", split="train")
    assert len(src) == 2 and src.num_classes == 2
    patch = synthetic.ROOK_PATCH
    assert patch.shape == (16, 13)
    a, b = src[0], src[1]
    assert a["image"].shape == (32, 32, 1) and a["image"].dtype == np.float32
    assert (int(a["label"]), int(b["label"])) == (0, 1)
    assert 0 <= a["image"].min() and a["image"].max() <= 1
    np.testing.assert_array_equal(a["image"][:16, :13, 0], patch)
    np.testing.assert_array_equal(b["image"][16:, 19:, 0], patch)
    # nothing else is drawn, and the two images hold the same patch
    assert a["image"].sum() == b["image"].sum() == patch.sum()
    # the patch touches the corner it belongs to
    assert patch[0, 0] > 0 and patch[-1, -1] > 0
    for split in ("val", "test"):  # train = test in the paper
        np.testing.assert_array_equal(data.get("rook", split=split).images, src.images)


def _boxes(image):
    """(y, x) of the top-left pixel of the red and of the green box, checking each is 4x4."""
    out = []
    for c in (0, 1):
        ys, xs = np.nonzero(image[..., c])
        assert len(ys) == 16 and ys.max() - ys.min() == 3 and xs.max() - xs.min() == 3
        out.append((ys.min(), xs.min()))
    return out


def test_red_green_statistics():
    src = data.get("red_green", split="train", seed=3)
    assert len(src) == 2000 and src.images.shape == (2000, 32, 32, 3)
    np.testing.assert_array_equal(src.labels, np.arange(2000) % 2)  # alternating, balanced
    assert set(np.unique(src.images)) == {0.0, 1.0}
    assert not src.images[..., 2].any()
    positions = np.array([sum(_boxes(img), ()) for img in src.images])  # ry, rx, gy, gx
    ry, rx, gy, gx = positions.T
    lab = src.labels
    for y in (ry, gy):
        assert (y[lab == 0] >= 3).all() and (y[lab == 0] <= 10).all()
        assert (y[lab == 1] >= 19).all() and (y[lab == 1] <= 26).all()
    left = np.where(lab == 0, rx, gx)
    right = np.where(lab == 0, gx, rx)
    assert (left >= 0).all() and (left <= 9).all()
    assert (right >= left + 5).all() and (right <= 27).all()
    # the ranges are actually covered (inclusive ends are drawn)
    assert {ry[lab == 0].min(), ry[lab == 0].max(), left.min(), left.max(), right.max()} == {3, 10, 0, 9, 27}


def test_red_green_dissimilar_swaps_bands():
    test = data.get("red_green", split="test", seed=1)
    dis = data.get("red_green", split="test_dissimilar", seed=1)
    assert len(test) == len(dis) == 1000
    np.testing.assert_array_equal(test.labels, dis.labels)
    shift = np.where(test.labels == 0, 16, -16)
    for img_t, img_d, s in zip(test.images, dis.images, shift):
        np.testing.assert_array_equal(np.roll(img_t, s, axis=0), img_d)
    ys = np.array([_boxes(img)[0][0] for img in dis.images])
    assert (ys[dis.labels == 0] >= 19).all() and (ys[dis.labels == 1] <= 10).all()


def test_red_green_determinism_and_independent_splits():
    a = data.get("red_green", split="val", seed=5)
    b = data.get("red_green", split="val", seed=5)
    assert a.images.tobytes() == b.images.tobytes()
    assert data.get("red_green", split="val", seed=6).images.tobytes() != a.images.tobytes()
    train = data.get("red_green", split="train", seed=5)
    test = data.get("red_green", split="test", seed=5)
    # the official generator made val == test == train[:1000]; ours are independent draws
    for other in (train.images[:1000], test.images):
        same = np.mean([np.array_equal(x, y) for x, y in zip(a.images, other)])
        assert same < 0.05
    small = data.get("red_green", split="train", seed=5, size=10)
    assert len(small) == 10


def test_synthetic_bad_input():
    with pytest.raises(ValueError, match="split .* must be one of"):
        data.get("red_green", split="validation")
    with pytest.raises(ValueError, match="split .* must be one of"):
        data.get("rook", split="test_dissimilar")
    with pytest.raises(ValueError, match="data set name must be one of"):
        data.get("mnist", split="train")
    with pytest.raises(ValueError, match="size"):
        data.get("red_green", split="train", size=0)
    with pytest.raises(TypeError, match="seed"):
        data.get("red_green", split="train", seed=1.5)


def test_red_green_official_protocol_sets_are_the_first_training_images():
    train = data.get("red_green", split="train", seed=2)
    first = data.get("red_green", split="train_first1000", seed=2)
    swapped = data.get("red_green", split="train_first1000_dissimilar", seed=2)
    assert len(first) == len(swapped) == 1000
    for i in (0, 1, 500, 999):
        np.testing.assert_array_equal(first[i]["image"], train[i]["image"])
        shift = 16 if first[i]["label"] == 0 else -16  # boxes stay inside: roll = translate
        np.testing.assert_array_equal(np.roll(first[i]["image"], shift, axis=0),
                                      swapped[i]["image"])
    assert len(data.get("red_green", split="train_first1000", seed=2, size=300)) == 300


# SHA-256 of the official Exp2 generator's sets as float32 NHWC bytes, computed by running
# full_conv/Exp2_Red_Green/utils_red_green.py of oskyhn/CNNs-Without-Borders (commit 4fae1d8)
# as its script calls it: gen_box_data(length=2000) for train and gen_box_data_test(length=1000)
# for the dissimilar set (numpy 2.4, legacy RandomState stream).
OFFICIAL_TRAIN_SHA256 = "455374bca123bb2aabd1790727884cbab5e4e2b5efe6187b16ec7fed8ad87c15"
OFFICIAL_DISSIMILAR_SHA256 = "71f693d49da342047989cf3324d0c9b1f9652e16a193e484500ce63d8b4febde"


def _sha256(images):
    import hashlib
    return hashlib.sha256(np.ascontiguousarray(images, np.float32).tobytes()).hexdigest()


def test_red_green_official_generator_reproduces_the_papers_data_set():
    kw = dict(seed=synthetic.PAPER_DATA_SEED, generator="official")
    train = data.get("red_green", split="train", **kw)
    assert _sha256(train.images) == OFFICIAL_TRAIN_SHA256
    assert _sha256(data.get("red_green", split="test_dissimilar", **kw).images) == OFFICIAL_DISSIMILAR_SHA256
    # the official val and similar-test sets are the first 1000 training images
    for split in ("val", "test", "train_first1000"):
        np.testing.assert_array_equal(data.get("red_green", split=split, **kw).images, train.images[:1000])
    np.testing.assert_array_equal(train.labels, np.arange(2000) % 2)
    # a prefix of the same stream when fewer images are asked for
    np.testing.assert_array_equal(data.get("red_green", split="train", size=300, **kw).images,
                                  train.images[:300])


def test_red_green_heldout_sets_are_independent_of_the_training_images():
    kw = dict(seed=1988, generator="official")
    train = data.get("red_green", split="train", **kw)
    held = data.get("red_green", split="heldout", **kw)
    held_d = data.get("red_green", split="heldout_dissimilar", **kw)
    assert len(held) == 1000 and held.images.tobytes() != train.images[:1000].tobytes()
    for i in (0, 1, 999):
        shift = 16 if held[i]["label"] == 0 else -16
        np.testing.assert_array_equal(np.roll(held[i]["image"], shift, axis=0), held_d[i]["image"])
    # the jaxeq generator's held-out set is its independent test set; its bytes are unchanged
    np.testing.assert_array_equal(data.get("red_green", split="heldout", seed=3).images,
                                  data.get("red_green", split="test", seed=3).images)
    with pytest.raises(ValueError, match="generator must be one of"):
        data.get("red_green", split="train", generator="paper")
