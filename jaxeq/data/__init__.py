"""Data sets of the paper's experiments and the input pipeline (SPEC.md E0-E4a).

``get(name, split=..., seed=..., **kwargs)`` returns a random-access *source*
(``len(source)``, ``source[i] -> {"image", "label"}``, ``source.num_classes``);
``batches`` turns a source into this process's numpy batches; ``to_model_input`` runs on
device and turns uint8 images into ImageNet-normalised float32 (floats pass through).

=================  ===========  ================================================================
name               experiment   kwargs
=================  ===========  ================================================================
rook               E0           size=32
red_green          E2           size=None (samples; default train 2000 / val 1000 / test 1000),
                                generator="jaxeq"|"official" (the paper's exact data set)
quadrant           E1           source="photos"|"imagenet"|"folder", border=0, per_split=None,
                                folder=None, data_dir=None, cache_dir=None
imagenet           E4a          per_class=None, subset="random"|"official50" (the official
                                50-per-class list), classes=None, data_dir, workdir, cache_dir,
                                augment, image_size=224, eval_resize=256, eval_crop=224, workers
imagenet_a200      E3           as imagenet (classes fixed to the 200 ImageNet-A classes)
photo_id           E3/E4a CPU  per_class=None, image_size=64, crop=None (see jaxeq.data.photo_id:
                   analogs      K-class photo identity, label independent of position)
folder             (own data)   root=PATH, val_fraction=0.1, test_fraction=0.1, augment,
                                image_size=224, eval_resize=256, workers
moving_shapes      E5 CPU       videos of moving textured shapes, class = motion, position
                   analog       random (see jaxeq.data.moving_shapes)
ucf101, hmdb51     E5           frame folders + the official split files, or tfds ucf101
                                (see jaxeq.data.video)
=================  ===========  ================================================================

E4b's patch data (PhotoTour folders, the photo-patch analog) are read by its own loop
(:mod:`jaxeq.data.phototour`, :mod:`jaxeq.data.patch_pairs`).

This package never imports jaxeq.models, and tensorflow_datasets only when ImageNet is used.
"""
from __future__ import annotations

from typing import Any, Callable

from jaxeq.data._common import IMAGENET_MEAN, IMAGENET_STD, ArraySource, Source, normalise_uint8
from jaxeq.data.moving_shapes import moving_shapes
from jaxeq.data.pipeline import batches, epoch_order, num_batches
from jaxeq.data.quadrant_imagenet import quadrant
from jaxeq.data.synthetic import RED_GREEN_SPLITS, red_green, rook
from jaxeq.data.video import VIDEO_SPLITS, hmdb51, ucf101

SPLITS = {
    "rook": ("train", "val", "test"),
    "red_green": RED_GREEN_SPLITS,
    "quadrant": ("train", "val", "test"),
    "imagenet": ("train", "val", "test"),
    "imagenet_a200": ("train", "val", "test"),
    "folder": ("train", "val", "test"),
    "photo_id": ("train", "val", "test"),
    "moving_shapes": VIDEO_SPLITS, "ucf101": VIDEO_SPLITS, "hmdb51": VIDEO_SPLITS,
}


def _quadrant(split: str, seed: int, **kwargs: Any):
    return quadrant(split=split, seed=seed, **kwargs)


def _imagenet(split: str, seed: int, **kwargs: Any):
    from jaxeq.data.imagenet import imagenet
    return imagenet(split, seed, **kwargs)


def _imagenet_a200(split: str, seed: int, **kwargs: Any):
    from jaxeq.data.imagenet import imagenet_a200
    return imagenet_a200(split, seed, **kwargs)


def _photo_id(split: str, seed: int, **kwargs: Any):
    from jaxeq.data.photo_id import photo_id
    return photo_id(split, seed, **kwargs)


def _folder(split: str, seed: int, **kwargs: Any):
    from jaxeq.data.folder import folder
    return folder(split, seed, **kwargs)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "rook": rook, "red_green": red_green, "quadrant": _quadrant, "imagenet": _imagenet,
    "imagenet_a200": _imagenet_a200, "folder": _folder, "photo_id": _photo_id,
    "moving_shapes": moving_shapes, "ucf101": ucf101, "hmdb51": hmdb51,
}


def names() -> list[str]:
    return list(_BUILDERS)


def get(name: str, *, split: str, seed: int = 0, **kwargs: Any):
    """The source ``name`` (see the table in the module docstring) for ``split``."""
    if not isinstance(name, str) or name not in _BUILDERS:
        raise ValueError(f"data set name must be one of {tuple(_BUILDERS)}, got {name!r}")
    if not isinstance(split, str) or split not in SPLITS[name]:
        raise ValueError(f"split for data set {name!r} must be one of {SPLITS[name]}, got {split!r}")
    return _BUILDERS[name](split, seed, **kwargs)


def to_model_input(images):
    """On device: uint8 (..., 3) -> float32 ImageNet-normalised; float input unchanged."""
    import jax.numpy as jnp

    images = jnp.asarray(images)
    if jnp.issubdtype(images.dtype, jnp.floating):
        return images
    if images.dtype != jnp.uint8:
        raise TypeError(f"images must be uint8 or floating, got {images.dtype}")
    if images.shape[-1] != 3:
        raise ValueError(f"uint8 images must have 3 channels last, got shape {images.shape}")
    shape = (1,) * (images.ndim - 1) + (3,)
    mean = jnp.asarray(IMAGENET_MEAN).reshape(shape)
    std = jnp.asarray(IMAGENET_STD).reshape(shape)
    return (images.astype(jnp.float32) / 255.0 - mean) / std


__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "SPLITS", "ArraySource", "Source", "batches", "epoch_order",
    "get", "names", "normalise_uint8", "num_batches", "quadrant", "red_green", "rook",
    "to_model_input",
]
