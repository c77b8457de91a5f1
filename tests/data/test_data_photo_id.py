"""Photo identity (the position-independent CPU stand-in for E3 / E4a): splits, labels, crops."""
import numpy as np
import pytest

import jaxeq.data as data
from jaxeq.data import photo_id as pid
from jaxeq.data.quadrant_imagenet import PHOTO_NAMES


def _pixels(split, seed=0):
    """Every (photo, y, x) pixel the split's crops cover."""
    src = pid.photo_id(split, seed, per_class=30, image_size=32)
    cover = set()
    for o in src.origin:
        name, rest = o.split("[")
        ys, xs = rest.rstrip("]").split(",")
        (y0, y1), (x0, x1) = (map(int, ys.split(":")), map(int, xs.split(":")))
        cover |= {(name, y, x) for y in range(y0, y1, 4) for x in range(x0, x1, 4)}
    return cover


def test_splits_share_no_pixel_and_every_class_is_in_every_split():
    blocks = pid._blocks(0)
    for split in blocks:
        assert {k for k, _, _ in split} == set(range(len(PHOTO_NAMES)))
    train, val, test = (_pixels(s) for s in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test


def test_labels_balanced_and_images_are_content_to_their_borders():
    src = data.get("photo_id", split="train", seed=0, per_class=12, image_size=40)
    assert src.num_classes == len(PHOTO_NAMES) and len(src) == 12 * len(PHOTO_NAMES)
    assert np.bincount(src.labels).tolist() == [12] * len(PHOTO_NAMES)
    assert src.images.dtype == np.uint8 and src.images.shape[1:] == (40, 40, 3)
    # each image is a photo crop (no canvas whose placement could encode the class), with content
    assert all(img.std() >= 4.0 for img in src.images)
    photos = dict(pid.embedded_photos())
    for img, o in zip(src.images[::7], src.origin[::7]):
        name, rest = o.split("[")
        ys, xs = rest.rstrip("]").split(",")
        (y0, y1), (x0, x1) = (map(int, ys.split(":")), map(int, xs.split(":")))
        np.testing.assert_array_equal(img, photos[name][y0:y1, x0:x1])


def test_deterministic_and_seed_dependent():
    a = pid.photo_id("val", 3, per_class=5)
    b = pid.photo_id("val", 3, per_class=5)
    c = pid.photo_id("val", 4, per_class=5)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_crop_windows():
    train = pid.photo_id("train", 0, per_class=3, image_size=64, crop=48)
    e0, e1 = train.get_batch([0, 1, 2], epoch=0), train.get_batch([0, 1, 2], epoch=1)
    assert e0["image"].shape == (3, 48, 48, 3)
    assert not np.array_equal(e0["image"], e1["image"])  # a fresh window each epoch
    np.testing.assert_array_equal(train.get(1, epoch=1)["image"], e1["image"][1])
    # the window is a sub-image of the stored crop
    img, win = train.images[0], e0["image"][0]
    hits = [(y, x) for y in range(17) for x in range(17)
            if np.array_equal(img[y:y + 48, x:x + 48], win)]
    assert hits
    test = pid.photo_id("test", 0, per_class=2, image_size=64, crop=48)
    np.testing.assert_array_equal(test.get(0, epoch=5)["image"], test.images[0][8:56, 8:56])
    whole = pid.photo_id("test", 0, per_class=2, image_size=64)
    assert whole.get(0)["image"].shape == (64, 64, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"per_class": 0}, "per_class must be an int >= 1"),
    ({"image_size": 200}, "image_size must be <= 96"),
    ({"crop": 80}, r"crop must be None or <= image_size \(64\)"),
    ({"split": "bogus"}, "split"),
])
def test_bad_arguments_name_themselves(kwargs, match):
    kwargs = {"split": "train", **kwargs}
    with pytest.raises(ValueError, match=match):
        pid.photo_id(**kwargs)
