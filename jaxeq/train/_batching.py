"""Batching for the trainer: ``jaxeq.data``'s functions when that package is present, else a
minimal private implementation of the same contract (so the trainer and its tests do not
depend on the data package being finished).

Contract (docs in ``jaxeq.data``): ``batches(source, batch_size, *, shuffle, seed, epoch,
process_index, process_count, drop_remainder, start_batch)`` yields this process's share
``{"image", "label", "mask"}`` of each GLOBAL batch; the global batch does not depend on
``process_count``; ``start_batch`` skips ahead exactly.
"""
from __future__ import annotations

import importlib

import jax.numpy as jnp
import numpy as np

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _data_module():
    try:
        return importlib.import_module("jaxeq.data")
    except ImportError:
        return None


def _order(n: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def num_batches(source, batch_size: int, drop_remainder: bool) -> int:
    mod = _data_module()
    if mod is not None and hasattr(mod, "num_batches"):
        return mod.num_batches(source, batch_size, drop_remainder)
    n = len(source)
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(source, batch_size: int, *, shuffle: bool, seed: int, epoch: int,
            process_index: int = 0, process_count: int = 1, drop_remainder: bool = True,
            start_batch: int = 0):
    mod = _data_module()
    if mod is not None and hasattr(mod, "batches"):
        yield from mod.batches(source, batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                               process_index=process_index, process_count=process_count,
                               drop_remainder=drop_remainder, start_batch=start_batch)
        return
    if batch_size % process_count:
        raise ValueError(f"batch_size={batch_size} is not divisible by "
                         f"process_count={process_count}")
    order = _order(len(source), shuffle, seed, epoch)
    local = batch_size // process_count
    for b in range(start_batch, num_batches(source, batch_size, drop_remainder)):
        idx = order[b * batch_size:(b + 1) * batch_size]
        mask = np.ones(batch_size, bool)
        if len(idx) < batch_size:  # pad the last batch with copies of its first sample
            mask[len(idx):] = False
            idx = np.concatenate([idx, np.full(batch_size - len(idx), idx[0])])
        idx = idx[process_index * local:(process_index + 1) * local]
        items = [source[int(i)] for i in idx]
        yield {"image": np.stack([it["image"] for it in items]),
               "label": np.asarray([it["label"] for it in items], np.int32),
               "mask": mask[process_index * local:(process_index + 1) * local]}


def to_model_input(images):
    """On device: float passes through; uint8 becomes float32 normalised by ImageNet mean/std."""
    mod = _data_module()
    if mod is not None and hasattr(mod, "to_model_input"):
        return mod.to_model_input(images)
    if images.dtype == jnp.uint8:
        x = images.astype(jnp.float32) / 255.0
        shape = (1,) * (x.ndim - 1) + (-1,)  # explicit broadcast (rank promotion may be strict)
        return (x - _IMAGENET_MEAN.reshape(shape)) / _IMAGENET_STD.reshape(shape)
    return images
