"""Pieces every data set shares: the source protocol, ImageNet normalisation, argument checks.

A *source* is random access: ``len(source)`` and ``source[i] -> {"image", "label"}``. Sources
whose samples are random (training augmentation) also expose ``get(i, epoch=...)`` so the
pipeline can ask for epoch ``e``'s version of sample ``i``; ``source[i]`` is epoch 0. Sources
that can load many samples faster than one by one (thread-pool decoding) expose
``get_batch(indices, epoch=...)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# ImageNet channel statistics in [0, 1] units (the torchvision values every paper uses).
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalise_uint8(images: np.ndarray) -> np.ndarray:
    """Host-side twin of ``to_model_input``: uint8 RGB (..., 3) -> float32 ImageNet-normalised."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 with 3 channels last, got {images.dtype} "
                         f"shape {images.shape}")
    return ((images.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def check_split(split: Any, allowed: Sequence[str], dataset: str) -> str:
    if not isinstance(split, str) or split not in allowed:
        raise ValueError(f"split for data set {dataset!r} must be one of {tuple(allowed)}, "
                         f"got {split!r}")
    return split


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def rng(*key: int) -> np.random.Generator:
    """A numpy generator from a tuple of ints (seed, purpose tag, ...): independent streams."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


class Source:
    """Base class of the random-access data sets (see the module docstring)."""

    num_classes: int = 0
    description: str = ""
    # True when a batch is a slice of arrays already in memory: building it costs less than
    # handing it over from a loader thread, so the pipeline builds it in the consumer's thread
    in_memory: bool = False

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self.get(i, epoch=0)

    def get(self, i: int, *, epoch: int = 0) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _index(self, i: Any) -> int:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"index must be an int, got {i!r}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a source of length {n}")
        return int(i) % n

    def __repr__(self) -> str:
        return f"{type(self).__name__}(len={len(self)}, num_classes={self.num_classes})"


class ArraySource(Source):
    """A source over in-memory arrays (the small synthetic sets)."""

    in_memory = True

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, num_classes: int,
                 description: str = ""):
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
        self.images = images
        self.labels = np.asarray(labels, np.int32)
        self.num_classes = num_classes
        self.description = description

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, i: int, *, epoch: int = 0) -> dict[str, np.ndarray]:
        i = self._index(i)
        return {"image": self.images[i], "label": self.labels[i]}

    def get_batch(self, indices: Sequence[int], *, epoch: int = 0) -> dict[str, np.ndarray]:
        idx = np.asarray(indices, np.int64)
        return {"image": self.images[idx], "label": self.labels[idx]}
