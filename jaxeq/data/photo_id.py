"""Photo identity: a K-class real-image task whose label does not depend on position.

The CPU stand-in for the paper's ImageNet claims (E3 shift robustness, E4a data efficiency):
class k is "a crop of photograph k", for the photographs that ship inside scikit-image's wheel
(``jaxeq.data.quadrant_imagenet.PHOTO_NAMES``; NOT ImageNet). A sample is an ``image_size``
square crop at a uniformly random place in one of the photo's blocks, so where the content
sits says nothing about the class, and every image is natural content to its borders (no zero
canvas), as an ImageNet photo is.

Splits: every photo is tiled into ``BLOCK`` x ``BLOCK`` blocks and each photo's blocks are dealt
to train / val / test by a seeded permutation (round robin per photo, so every class has
blocks in every split); a split's crops lie inside its own blocks, so no pixel is shared
between splits. Crops of one split may overlap each other. Near-constant crops (std below
``MIN_PATCH_STD`` levels: the black background of ``retina``) are redrawn.

``crop``: ``None`` gives the whole ``image_size`` crops (what the shift metrics take, like the
paper's 288 px E3 images); an int ``c`` gives, for the train split, a fresh random ``c`` x ``c``
window of each image every epoch (seeded by seed, epoch and index), and for val / test the
centre window (the paper's 224 from 288 is 0.78 of the side; 48 of 64 is 0.75).
"""
from __future__ import annotations

import functools
import numpy as np

from jaxeq import _checks
from jaxeq.data._common import Source, check_split, rng
from jaxeq.data.quadrant_imagenet import MIN_PATCH_STD, embedded_photos

PHOTO_ID_SPLITS = ("train", "val", "test")
BLOCK = 96
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
DEFAULT_PER_CLASS = {"train": 100, "val": 20, "test": 40}


@functools.cache
def _blocks(seed: int) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """Per split: (photo index, y, x) of its blocks; each photo's blocks dealt round robin."""
    photos = embedded_photos()
    splits: list[list[tuple[int, int, int]]] = [[], [], []]
    for k, (_, img) in enumerate(photos):
        mine = [(k, y, x) for y in range(0, img.shape[0] - BLOCK + 1, BLOCK)
                for x in range(0, img.shape[1] - BLOCK + 1, BLOCK)]
        order = rng(seed, 31, k).permutation(len(mine))
        for j, b in enumerate(order):
            splits[j % 3].append(mine[b])
    return tuple(tuple(s) for s in splits)


def photo_crops(split: str, per_class: int, image_size: int, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """uint8 (K * per_class, s, s, 3) crops, int32 labels (class-major) and each crop's origin."""
    photos = embedded_photos()
    blocks = _blocks(seed)[_SPLIT_ID[split]]
    images = np.empty((len(photos) * per_class, image_size, image_size, 3), np.uint8)
    labels = np.repeat(np.arange(len(photos), dtype=np.int32), per_class)
    origin = []
    for k, (name, img) in enumerate(photos):
        mine = [b for b in blocks if b[0] == k]
        g = rng(seed, 32, _SPLIT_ID[split], k)
        j = 0
        while j < per_class:
            _, by, bx = mine[g.integers(len(mine))]
            y = by + int(g.integers(BLOCK - image_size + 1))
            x = bx + int(g.integers(BLOCK - image_size + 1))
            window = img[y:y + image_size, x:x + image_size]
            if window.std() < MIN_PATCH_STD:
                continue
            images[k * per_class + j] = window
            origin.append(f"{name}[{y}:{y + image_size},{x}:{x + image_size}]")
            j += 1
    return images, labels, origin


class PhotoId(Source):
    """See the module docstring. ``images``: uint8 (n, s, s, 3)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, crop: int | None, train: bool,
                 seed: int, description: str, origin: list[str]):
        self.images, self.labels = images, labels
        self.crop, self.train, self.seed = crop, train, seed
        self.num_classes = len(embedded_photos())
        self.description, self.origin = description, origin

    def __len__(self) -> int:
        return len(self.labels)

    def _offset(self, i: int, epoch: int) -> tuple[int, int]:
        room = self.images.shape[1] - self.crop
        if not self.train:
            return room // 2, room // 2
        g = rng(self.seed, 33, epoch, i)
        return int(g.integers(room + 1)), int(g.integers(room + 1))

    def _window(self, i: int, epoch: int) -> np.ndarray:
        if self.crop is None:
            return self.images[i]
        y, x = self._offset(i, epoch)
        return self.images[i, y:y + self.crop, x:x + self.crop]

    def get(self, i: int, *, epoch: int = 0) -> dict[str, np.ndarray]:
        i = self._index(i)
        return {"image": self._window(i, epoch), "label": self.labels[i]}

    def get_batch(self, indices, *, epoch: int = 0) -> dict[str, np.ndarray]:
        idx = [self._index(int(i)) for i in indices]
        return {"image": np.stack([self._window(i, epoch) for i in idx]),
                "label": self.labels[np.asarray(idx, np.int64)]}


def photo_id(split: str = "train", seed: int = 0, *, per_class: int | None = None,
             image_size: int = 64, crop: int | None = None) -> PhotoId:
    """Build a photo-identity split (module docstring).

    ``per_class``: crops per photo (default 100 train, 20 val, 40 test); ``image_size``: side of
    the stored crops (at most ``BLOCK``); ``crop``: None or the side of the window the model sees.
    """
    check_split(split, PHOTO_ID_SPLITS, "photo_id")
    seed = _checks.int_at_least("seed", seed, 0)
    per_class = DEFAULT_PER_CLASS[split] if per_class is None else \
        _checks.int_at_least("per_class", per_class, 1)
    image_size = _checks.int_at_least("image_size", image_size, 8)
    if image_size > BLOCK:
        raise ValueError(f"image_size must be <= {BLOCK} (the block a crop lies in), got {image_size}")
    crop = _checks.int_at_least("crop", crop, 1, allow_none=True)
    if crop is not None and crop > image_size:
        raise ValueError(f"crop must be None or <= image_size ({image_size}), got {crop}")
    images, labels, origin = photo_crops(split, per_class, image_size, seed)
    what = "embedded photographs (scikit-image sample photos, NOT ImageNet)"
    window = "whole" if crop is None else (f"random {crop}px window per epoch" if split == "train"
                                           else f"centre {crop}px window")
    return PhotoId(images, labels, crop=crop, train=split == "train", seed=seed, origin=origin,
                   description=f"photo identity ({split}, {per_class}/class, {image_size}px, "
                               f"{window}): {what}")

