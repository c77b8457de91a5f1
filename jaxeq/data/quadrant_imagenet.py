"""Quadrant ImageNet (SPEC E1): how far from the border can a CNN read absolute location?

Each sample is a 56x56 patch pasted at the upper-left (label 0) or bottom-right (label 1) of a
120x120 canvas (the patches' corners 8 px apart on each axis: 56 + 8 + 56 = 120), plus
``border`` extra zero pixels on every side, so the image is (120 + 2 border)^2 x 3. Patches are
ImageNet-normalised float32 and the canvas is exactly 0, i.e. 'zero after normalisation'.
Every patch appears twice in its split, once per corner (sample i: patch i // 2, label i % 2),
so a split of n patches has 2n samples. Canvases are built on access (at border 512 one image
is 16 MB), only the patches are held in memory.

Patch sources (``source=``):
- ``"photos"`` (default, needs no data set): *embedded photographs*, the real photos that ship
  inside scikit-image's wheel (``skimage.data``), NOT ImageNet. Each photo is tiled into
  112x112 blocks; a seeded draw gives every block to one split, and a split's patches are
  random 56x56 crops inside its own blocks, so no pixel is shared between splits (patches of
  one split may overlap each other), and near-constant crops are redrawn, so no image repeats
  across splits. Native resolution, no resizing.
- ``"imagenet"``: tfds imagenet2012 validation images, resize 256, center-crop 224, resize
  56 (SPEC; the last step as the official ``cv2.resize``, see :func:`imagenet_patch`). Within each class a seeded permutation orders the images, and split train / val /
  test takes the 1st / 2nd / 3rd: three disjoint sets of one image per class (the official
  generator used one set for all three splits).
- ``"folder"``: any folder of images (``folder=PATH``), same geometry as ImageNet; the files
  are permuted (seeded) and cut into three disjoint thirds.
"""
from __future__ import annotations

import functools
import os
import warnings
from typing import Any

import numpy as np

from jaxeq.data import transforms
from jaxeq.data._common import (IMAGENET_MEAN, IMAGENET_STD, Source, check_int, check_split,
                                normalise_uint8, rng)

QUADRANT_SPLITS = ("train", "val", "test")
QUADRANT_SOURCES = ("photos", "imagenet", "folder")
PATCH = 56
CANVAS = 120
GAP = 8
BLOCK = 2 * PATCH
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
MIN_PATCH_STD = 4.0   # uint8 levels; photo crops below it are near-constant (see photo_patches)

# Photographs inside the scikit-image wheel (checked: they load with no download). Text scans,
# drawings, masks and synthetic images are left out; motorcycle_right is left out because it
# is the stereo twin of motorcycle_left (near-duplicate content across splits).
PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
               "immunohistochemistry", "retina", "motorcycle_left", "camera", "coins",
               "moon", "grass", "gravel", "brick")


@functools.cache
def embedded_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """(name, uint8 (H, W, 3)) for every photo in ``PHOTO_NAMES`` (grayscale -> 3 channels)."""
    import skimage.data

    photos = []
    for name in PHOTO_NAMES:
        img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
        img = np.asarray(img, np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        photos.append((name, np.ascontiguousarray(img[..., :3])))
    return tuple(photos)


def _photo_blocks(photos, seed: int) -> list[list[tuple[int, int, int]]]:
    """Every photo's BLOCK x BLOCK tiles, dealt to the three splits by a seeded permutation."""
    blocks = [(k, y, x) for k, (_, img) in enumerate(photos)
              for y in range(0, img.shape[0] - BLOCK + 1, BLOCK)
              for x in range(0, img.shape[1] - BLOCK + 1, BLOCK)]
    order = rng(seed, 21).permutation(len(blocks))
    return [[blocks[j] for j in order[s::3]] for s in range(3)]


def photo_patches(split: str, n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """n uint8 56x56x3 crops from the split's own blocks; also returns where each came from.

    Near-constant crops (pixel std < ``MIN_PATCH_STD`` levels: the black background of
    ``retina``, the dark sky of ``moon``) are redrawn: two splits would otherwise hold the same
    black image, and a patch with no content carries nothing to classify by but its position.
    """
    photos = embedded_photos()
    mine = _photo_blocks(photos, seed)[_SPLIT_ID[split]]
    g = rng(seed, 22, _SPLIT_ID[split])
    patches = np.empty((n, PATCH, PATCH, 3), np.uint8)
    origin = []
    j = 0
    while j < n:
        k, by, bx = mine[g.integers(len(mine))]
        y, x = by + int(g.integers(BLOCK - PATCH + 1)), bx + int(g.integers(BLOCK - PATCH + 1))
        crop = photos[k][1][y:y + PATCH, x:x + PATCH]
        if crop.std() < MIN_PATCH_STD:
            continue
        patches[j] = crop
        origin.append(f"{photos[k][0]}[{y}:{y + PATCH},{x}:{x + PATCH}]")
        j += 1
    return patches, origin


def imagenet_patch(image: Any) -> np.ndarray:
    """SPEC E1 geometry as the official generator makes it -> float32 (56, 56, 3), 0..255 units.

    Resize 256 and center-crop 224 (torchvision's antialiased bilinear), then the official
    ``cv2.resize(..., (56, 56))``: OpenCV's default INTER_LINEAR samples at half-pixel centres
    without antialiasing, which for this exact 4x reduction is the mean of the 2x2 central
    pixels of every 4x4 block. The official code resizes after normalising; the per-channel
    normalisation is affine, so the order does not matter.
    """
    crop = transforms.eval_image(image, resize=256, crop=224).astype(np.float32)
    return 0.25 * (crop[1::4, 1::4] + crop[2::4, 1::4] + crop[1::4, 2::4] + crop[2::4, 2::4])


def _normalise(patches: np.ndarray) -> np.ndarray:
    """ImageNet normalisation of uint8 or float (0..255 units) patches -> float32."""
    if patches.dtype == np.uint8:
        return normalise_uint8(patches)
    return ((patches / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def _imagenet_patches(split: str, seed: int, n: int | None, data_dir, cache_dir):
    from jaxeq.data import imagenet as inet  # tfds only when asked for

    ds = inet.open_split("validation", data_dir)
    labels = inet.labels_of(ds, cache_file=inet.label_cache_file(cache_dir, data_dir, "validation", len(ds)))
    g = rng(seed, 11)
    chosen, short = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[g.permutation(len(members))]
        if len(members) < 3:
            short.append(int(c))
        else:
            chosen.append(int(members[_SPLIT_ID[split]]))
    if short:
        raise ValueError(f"quadrant 'imagenet' needs >= 3 validation images per class; classes "
                         f"{short[:10]}{'...' if len(short) > 10 else ''} have fewer")
    chosen = chosen[:n] if n is not None else chosen
    patches = np.stack([imagenet_patch(ds[i]["image"]) for i in chosen])
    return patches, [f"imagenet2012/validation[{i}]" for i in chosen]


def _folder_patches(split: str, seed: int, n: int | None, root):
    from jaxeq.data.folder import list_images, load_rgb

    if root is None:
        raise ValueError("quadrant source 'folder' needs folder=<path to a folder of images>")
    paths = list_images(root, decode=True)
    third = len(paths) // 3
    n = third if n is None else n
    if n < 1 or n > third:
        raise ValueError(f"quadrant folder {str(root)!r}: {len(paths)} readable images give at most "
                         f"{third} per split (three disjoint splits), asked for {n}")
    order = rng(seed, 12).permutation(len(paths))
    mine = order[_SPLIT_ID[split] * third:][:n]
    patches = []
    for k in mine:
        img = load_rgb(paths[k])
        if min(img.shape[:2]) < PATCH:
            raise ValueError(f"image {str(paths[k])!r} is {img.shape[1]}x{img.shape[0]}, smaller "
                             f"than the {PATCH}x{PATCH} patch")
        patches.append(imagenet_patch(img))
    return np.stack(patches), [str(paths[k]) for k in mine]


class Quadrant(Source):
    """See the module docstring. ``patches``: float32 (n, 56, 56, 3), normalised."""

    num_classes = 2

    def __init__(self, patches: np.ndarray, border: int, description: str, origin: list[str]):
        self.patches = patches
        self.border = border
        self.size = CANVAS + 2 * border
        self.description = description
        self.origin = origin

    def __len__(self) -> int:
        return 2 * len(self.patches)

    def corner(self, label: int) -> int:
        """Row (= column) of the patch's top-left pixel for ``label``."""
        return self.border + (0 if label == 0 else PATCH + GAP)

    def get(self, i: int, *, epoch: int = 0) -> dict[str, np.ndarray]:
        i = self._index(i)
        label = i % 2
        image = np.zeros((self.size, self.size, 3), np.float32)
        o = self.corner(label)
        image[o:o + PATCH, o:o + PATCH] = self.patches[i // 2]
        return {"image": image, "label": np.int32(label)}

    def get_batch(self, indices, *, epoch: int = 0) -> dict[str, np.ndarray]:
        idx = np.array([self._index(int(i)) for i in indices], np.int64)
        images = np.zeros((len(idx), self.size, self.size, 3), np.float32)
        for j, i in enumerate(idx):
            o = self.corner(int(i % 2))
            images[j, o:o + PATCH, o:o + PATCH] = self.patches[i // 2]
        return {"image": images, "label": (idx % 2).astype(np.int32)}


def quadrant(source: str = "photos", split: str = "train", border: int = 0, seed: int = 0, *,
             per_split: int | None = None, folder: str | os.PathLike | None = None,
             data_dir: str | None = None, cache_dir: str | None = None) -> Quadrant:
    """Build a Quadrant split (module docstring). ``per_split``: patches per split (default
    1000 for photos and ImageNet (one per class), a third of the folder for folders)."""
    if source not in QUADRANT_SOURCES:
        raise ValueError(f"source must be one of {QUADRANT_SOURCES}, got {source!r}")
    check_split(split, QUADRANT_SPLITS, "quadrant")
    if not isinstance(border, (int, np.integer)) or isinstance(border, bool):
        raise TypeError(f"border must be an int >= 0 (zero pixels on every side), got {border!r}")
    if border < 0:
        raise ValueError(f"border must be >= 0 (zero pixels on every side), got {border}")
    seed = check_int("seed", seed, 0)
    if per_split is not None:
        per_split = check_int("per_split", per_split, 1)
    if source == "photos":
        patches, origin = photo_patches(split, 1000 if per_split is None else per_split, seed)
        what = "embedded photographs (scikit-image sample photos, NOT ImageNet)"
    elif source == "imagenet":
        patches, origin = _imagenet_patches(split, seed, per_split, data_dir, cache_dir)
        what = "ImageNet validation images (resize 256, crop 224, resize 56)"
    else:
        if data_dir is not None:
            warnings.warn("data_dir is ignored for quadrant source 'folder'", stacklevel=2)
        patches, origin = _folder_patches(split, seed, per_split, folder)
        what = f"images from folder {str(folder)!r} (resize 256, crop 224, resize 56)"
    return Quadrant(_normalise(patches), int(border),
                    f"E1 quadrant ({split}, border {border}): {what}", origin)
