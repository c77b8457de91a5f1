"""Shift-robustness metrics for classifiers (SPEC E3): crop consistency, circular-shift
consistency and accuracy along a diagonal of crop offsets.

``predict_fn`` maps a batch of images ``(B, H, W, C)`` to logits ``(B, K)``; the top-1 class is
the argmax. Every metric is one jitted program per call shape (the passes reuse it), and all
random offsets come from the explicit ``key``. Percentages are in [0, 100].

For data sets larger than one batch, call a metric per batch with ``reduce=False`` (per-image
values) or use the counts returned by :func:`diagonal_shift_accuracy`, and pass ``mask`` for
padded batches; only images with ``mask=True`` count.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from jaxeq import _checks
from jaxeq.analysis.precision import measure_jit
from jaxeq.shifts import roll

__all__ = ["circular_consistency", "crop_consistency", "diagonal_shift_accuracy"]


def _check_images(images: Any) -> jnp.ndarray:
    shape = np.shape(images)
    if len(shape) != 4:
        raise ValueError(f"images must have shape (N, H, W, C), got shape {shape}")
    return jnp.asarray(images)


def _check_mask(mask: Any, n: int) -> np.ndarray:
    if mask is None:
        return np.ones((n,), bool)
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype != bool:
        raise ValueError(f"mask must be a bool array of shape ({n},), got {m.dtype} {m.shape}")
    if not m.any():
        raise ValueError("mask selects no image")
    return m


def _check_key(key: Any) -> jax.Array:
    if key is None:
        raise TypeError("key must be a jax.random key (jax.random.key(seed)), got None")
    return key


def _crop_size(crop: Any, images: jnp.ndarray) -> tuple[int, int]:
    size = _checks.positive_ints("crop", crop, 2)
    if size[0] > images.shape[1] or size[1] > images.shape[2]:
        raise ValueError(f"crop {size} is larger than the images {images.shape[1:3]}")
    return size


def _top1(predict_fn, batch):
    logits = predict_fn(batch)
    if logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
        raise ValueError(f"predict_fn must return logits of shape (B, K), got {logits.shape} "
                         f"for a batch of {batch.shape[0]} images")
    return jnp.argmax(logits, axis=-1)


def _crop_each(images, offsets, size):
    """Crop image i at offsets[i] (traced) to ``size``: (N, H, W, C) -> (N, *size, C)."""
    def one(img, off):
        start = (off[0], off[1], jnp.int32(0))
        return lax.dynamic_slice(img, start, size + (img.shape[-1],))
    return jax.vmap(one)(images, offsets)


def _agreement(pair_fn, images, passes, key, mask, reduce):
    """Run ``pair_fn(images, key) -> (pred_a, pred_b)`` once per pass (one compiled program)
    and return the % of masked images whose two predictions agree."""
    run = measure_jit(lambda imgs, k: jnp.equal(*pair_fn(imgs, k)))
    agree = np.stack([np.asarray(run(images, k)) for k in jax.random.split(key, passes)])
    per_image = agree.mean(axis=0) * 100.0
    if not reduce:
        return per_image
    return float(per_image[mask].mean())


def crop_consistency(predict_fn: Callable, images: Any, *, crop: Any = 224,
                     max_offset: int = 64, passes: int = 5, key: Any = None,
                     mask: Any = None, reduce: bool = True):
    """% of images whose top-1 is the same for two independent random crops (SPEC E3).

    Each pass draws, per image, two crop offsets uniform in ``{0, ..., max_offset - 1}^2``
    (paper: crop 224 of 288 with ``max_offset=64``; Zhang 2019: crop 224 of 256 with
    ``max_offset=32``); the result is averaged over ``passes``. Images must be at least
    ``crop + max_offset - 1`` pixels in each dim. ``reduce=False`` returns the per-image
    agreement (%) as an ``(N,)`` array.
    """
    images = _check_images(images)
    size = _crop_size(crop, images)
    max_offset = _checks.int_at_least("max_offset", max_offset, 1)
    passes = _checks.int_at_least("passes", passes, 1)
    key = _check_key(key)
    mask = _check_mask(mask, images.shape[0])
    need = tuple(c + max_offset - 1 for c in size)
    if images.shape[1] < need[0] or images.shape[2] < need[1]:
        raise ValueError(f"images {images.shape[1:3]} are too small for crop {size} with "
                         f"max_offset={max_offset}: need at least crop + max_offset - 1 = {need}")
    n = images.shape[0]

    def pair(imgs, k):
        offsets = jax.random.randint(k, (2, n, 2), 0, max_offset)
        crops = jnp.concatenate([_crop_each(imgs, offsets[0], size),
                                 _crop_each(imgs, offsets[1], size)])
        top = _top1(predict_fn, crops)
        return top[:n], top[n:]

    return _agreement(pair, images, passes, key, mask, reduce)


def circular_consistency(predict_fn: Callable, images: Any, *, max_shift: int = 32,
                         passes: int = 5, key: Any = None, mask: Any = None,
                         reduce: bool = True):
    """% of images whose top-1 is the same for two independent random circular shifts
    (Chaman & Dokmanic 2021): each shift uniform in ``[-max_shift, max_shift)^2``, applied with
    :func:`jaxeq.roll`; averaged over ``passes``. ``reduce=False``: per-image % array."""
    images = _check_images(images)
    max_shift = _checks.int_at_least("max_shift", max_shift, 1)
    passes = _checks.int_at_least("passes", passes, 1)
    key = _check_key(key)
    mask = _check_mask(mask, images.shape[0])
    n = images.shape[0]

    def pair(imgs, k):
        shifts = jax.random.randint(k, (2, n, 2), -max_shift, max_shift)
        roll_each = jax.vmap(lambda img, s: roll(img[None], s)[0])
        both = jnp.concatenate([roll_each(imgs, shifts[0]), roll_each(imgs, shifts[1])])
        top = _top1(predict_fn, both)
        return top[:n], top[n:]

    return _agreement(pair, images, passes, key, mask, reduce)


def diagonal_shift_accuracy(predict_fn: Callable, images: Any, labels: Any, *,
                            crop: Any = 224, offsets: Iterable[int] = range(65),
                            mask: Any = None) -> dict:
    """Top-1 accuracy of the crop at offset ``(o, o)`` for every ``o`` in ``offsets`` (SPEC E3:
    crop 224 of 288, o = 0..64), in one jitted ``lax.map`` over the offsets.

    Returns a dict: ``offsets`` (array), ``accuracy`` (% per offset), ``mean`` (% averaged over
    the offsets), ``correct`` (count per offset) and ``count`` (images counted), so results of
    several batches add up exactly.
    """
    images = _check_images(images)
    size = _crop_size(crop, images)
    labels_np = np.asarray(labels)
    if labels_np.shape != (images.shape[0],) or not np.issubdtype(labels_np.dtype, np.integer):
        raise ValueError(f"labels must be an int array of shape ({images.shape[0]},), got "
                         f"{labels_np.dtype} {labels_np.shape}")
    offs = np.asarray(list(offsets))
    if offs.ndim != 1 or len(offs) == 0 or not np.issubdtype(offs.dtype, np.integer) \
            or np.any(offs < 0):
        raise ValueError(f"offsets must be a non-empty sequence of ints >= 0, got {offsets!r}")
    need = tuple(c + int(offs.max()) for c in size)
    if images.shape[1] < need[0] or images.shape[2] < need[1]:
        raise ValueError(f"images {images.shape[1:3]} are too small for crop {size} at offset "
                         f"{int(offs.max())}: need at least crop + max(offsets) = {need}")
    mask = _check_mask(mask, images.shape[0])

    @measure_jit
    def correct_per_offset(imgs, labels, weights, offs):
        def at(o):
            start = (jnp.int32(0), o, o, jnp.int32(0))
            batch = lax.dynamic_slice(imgs, start, (imgs.shape[0],) + size + (imgs.shape[-1],))
            return jnp.sum((_top1(predict_fn, batch) == labels) * weights)
        return lax.map(at, offs)

    correct = np.asarray(correct_per_offset(images, jnp.asarray(labels_np, jnp.int32),
                                            jnp.asarray(mask, jnp.int32),
                                            jnp.asarray(offs, jnp.int32)))
    count = int(mask.sum())
    accuracy = correct / count * 100.0
    return {"offsets": offs, "accuracy": accuracy, "mean": float(accuracy.mean()),
            "correct": correct.astype(np.int64), "count": count}
