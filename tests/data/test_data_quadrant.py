"""Quadrant (E1): layout, border, disjoint splits, determinism, folder source, bad input."""
import re
import warnings

import numpy as np
import pytest
from PIL import Image

import jaxeq.data as data
from jaxeq.data import quadrant_imagenet as q


@pytest.mark.parametrize("border", [0, 5])
def test_layout_patch_exactly_at_the_corners(border):
    src = data.get("quadrant", split="val", seed=0, border=border, per_split=4)
    assert len(src) == 8 and src.num_classes == 2
    size = 120 + 2 * border
    assert "embedded photographs" in src.description and "NOT ImageNet" in src.description
    for i in range(len(src)):
        sample = src[i]
        img, label = sample["image"], int(sample["label"])
        assert img.shape == (size, size, 3) and img.dtype == np.float32
        assert label == i % 2
        o = border if label == 0 else border + 64
        np.testing.assert_array_equal(img[o:o + 56, o:o + 56], src.patches[i // 2])
        rest = img.copy()
        rest[o:o + 56, o:o + 56] = 0
        assert not rest.any()  # zeros everywhere else, border included
    # the patch is normalised: an all-black pixel would be -mean/std, and the canvas 0 is
    # the normalised value of the ImageNet mean colour
    np.testing.assert_allclose(src.patches, data.normalise_uint8(
        np.round(src.patches * data.IMAGENET_STD * 255 + data.IMAGENET_MEAN * 255).astype(np.uint8)),
        atol=1e-5)
    batch = src.get_batch(range(len(src)))
    np.testing.assert_array_equal(batch["image"], np.stack([src[i]["image"] for i in range(len(src))]))


def _covered(origins):
    cells = set()
    for o in origins:
        name, y0, y1, x0, x1 = re.match(r"(\w+)\[(\d+):(\d+),(\d+):(\d+)\]", o).groups()
        cells.update((name, y, x) for y in range(int(y0), int(y1), 4) for x in range(int(x0), int(x1), 4))
    return cells


def test_photo_splits_are_pixel_disjoint_and_deterministic():
    splits = {s: data.get("quadrant", split=s, seed=7, per_split=200) for s in ("train", "val", "test")}
    cov = {s: _covered(src.origin) for s, src in splits.items()}
    assert not cov["train"] & cov["val"] and not cov["train"] & cov["test"] and not cov["val"] & cov["test"]
    again = data.get("quadrant", split="val", seed=7, per_split=200)
    assert again.patches.tobytes() == splits["val"].patches.tobytes()
    other = data.get("quadrant", split="val", seed=8, per_split=200)
    assert other.patches.tobytes() != again.patches.tobytes()
    # several different photographs are used
    assert len({o.split("[")[0] for o in splits["train"].origin}) >= 8


@pytest.mark.parametrize("seed", [0, 1988])
def test_photo_splits_hold_no_near_constant_patch_and_no_image_twice(seed):
    # A black crop of retina's background is the same image in every split; they are redrawn.
    patches = {s: q.photo_patches(s, 1000, seed)[0] for s in ("train", "val", "test")}
    seen = {}
    for split, p in patches.items():
        assert p.reshape(len(p), -1).std(1).min() >= q.MIN_PATCH_STD
        for patch in p:
            first = seen.setdefault(patch.tobytes(), split)
            assert first == split, f"a {split} patch is byte-identical to a {first} patch"


def test_embedded_photos_are_offline_photographs():
    photos = q.embedded_photos()
    assert len(photos) == len(q.PHOTO_NAMES)
    for name, img in photos:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert min(img.shape[:2]) >= q.BLOCK, name


def _write_folder(root, n, *, size=(80, 70), bad=()):
    g = np.random.default_rng(0)
    for k in range(n):
        Image.fromarray(g.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / f"img{k:02d}.png")
    for name in bad:
        (root / name).write_bytes(b"this is not an image")


def test_folder_source_skips_bad_files_with_a_count(tmp_path):
    _write_folder(tmp_path, 9, bad=("notes.txt", "broken.jpg"))
    with pytest.warns(UserWarning, match=r"skipped 2 of 11 files"):
        splits = [data.get("quadrant", source="folder", folder=str(tmp_path), split=s, border=2)
                  for s in ("train", "val", "test")]
    assert [len(s) for s in splits] == [6, 6, 6]
    sets = [set(s.origin) for s in splits]
    assert not sets[0] & sets[1] and not sets[0] & sets[2] and not sets[1] & sets[2]
    assert splits[0][0]["image"].shape == (124, 124, 3)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="border must be >= 0"):
        data.get("quadrant", split="train", border=-1)
    with pytest.raises(TypeError, match="border"):
        data.get("quadrant", split="train", border="16")
    with pytest.raises(ValueError, match="split .* must be one of"):
        data.get("quadrant", split="test_dissimilar")
    with pytest.raises(ValueError, match="source must be one of"):
        data.get("quadrant", split="train", source="coco")
    with pytest.raises(ValueError, match="folder"):
        data.get("quadrant", split="train", source="folder")
    _write_folder(tmp_path, 3, size=(40, 90))
    with pytest.raises(ValueError, match="smaller than the 56x56 patch"):
        data.get("quadrant", split="train", source="folder", folder=str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no readable images"):
        data.get("quadrant", split="train", source="folder", folder=str(empty))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.get("quadrant", split="train", source="folder", folder=str(tmp_path / "missing"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean folder gives no warning
        _write_folder(empty, 3)
        data.get("quadrant", split="train", source="folder", folder=str(empty))
