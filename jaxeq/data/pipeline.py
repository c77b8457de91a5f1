"""Batches for one process of a (possibly multi-host) run, on grain, deterministic from
(seed, epoch, step).

The order of an epoch is a seeded permutation of the whole source (the same on every process).
Global batch k is positions [k B, (k + 1) B) of that order; process p loads only its contiguous
share, slots [p b, (p + 1) b) with b = B / process_count. Concatenating the processes' batches
in process order therefore gives the same global batch whatever the process count. With
drop_remainder=False the last global batch is padded with zero images and ``mask`` marks the
real samples, so evaluation counts every sample exactly once.

grain does the rest: an epoch is a ``grain.MapDataset`` whose elements are this process's
share of the global batches, or its samples in that order (:func:`epoch_dataset`);
``to_iter_dataset`` loads on ``workers`` threads, ``prefetch`` batches ahead, and grain batches
the samples. The iterator's state ``{"next_index": ...}`` is the position in the epoch, so the
pair (epoch, batches consumed) that the trainer keeps in its checkpoint metadata restores the
iterator exactly (:class:`Batches`). Worker processes (``mp_prefetch``) are not used: they
need absl flags parsed, and each epoch's iterator would spawn processes that import jaxeq.

Why not grain's own ``IndexSampler(shard_options=ShardByJaxProcess(), shuffle=True)``: it gives
each process a contiguous range of the *records* and shuffles inside that range, so which
samples meet in a global batch depends on the process count. Computing the global order once
and sharding each global batch keeps the batch identical for 1, 2 or 4 processes.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np

from jaxeq.data._common import check_int, rng


def num_batches(source: Any, batch_size: int, drop_remainder: bool = True) -> int:
    """Global batches per epoch."""
    batch_size = check_int("batch_size", batch_size, 1)
    n = len(source)
    return n // batch_size if drop_remainder else -(-n // batch_size)


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The order in which an epoch visits the n samples (identical on every process)."""
    return rng(seed, 41, epoch).permutation(n) if shuffle else np.arange(n)


def _load(source: Any, indices: Sequence[int], epoch: int) -> dict[str, np.ndarray]:
    """Samples ``indices`` of epoch ``epoch`` stacked, with ``get_batch`` when the source has
    one, except for a source that decodes files (it has ``workers``): its ``get_batch`` runs a
    thread pool of its own, which would compete with grain's threads, so ``get`` is used."""
    if hasattr(source, "get_batch") and not hasattr(source, "workers"):
        return source.get_batch(list(indices), epoch=epoch)
    samples = [source.get(int(i), epoch=epoch) if hasattr(source, "get") else source[int(i)]
               for i in indices]
    return {"image": np.stack([np.asarray(s["image"]) for s in samples]),
            "label": np.array([s["label"] for s in samples], np.int32)}


class _Share:
    """This process's share of one epoch, read by grain's map functions: :meth:`batch` (global
    batch k, padded, with ``mask``) and :meth:`sample` (local slot j = k b + s). Plain
    attributes only, so it can be pickled into grain worker processes."""

    def __init__(self, source: Any, order: np.ndarray, batch_size: int, process_index: int,
                 process_count: int, epoch: int):
        self.source, self.order, self.epoch = source, order, epoch
        self.batch_size, self.b = batch_size, batch_size // process_count
        self.lo = process_index * self.b
        self._spec: tuple | None = None

    def _zeros(self, count: int) -> dict[str, np.ndarray]:
        """``count`` padding samples, shaped as sample 0 of the epoch."""
        if self._spec is None:
            first = _load(self.source, self.order[:1], self.epoch)["image"]
            self._spec = (first.shape[1:], first.dtype)
        return {"image": np.zeros((count, *self._spec[0]), self._spec[1]),
                "label": np.zeros(count, np.int32)}

    def batch(self, k: int) -> dict[str, np.ndarray]:
        start = int(k) * self.batch_size + self.lo
        mine = self.order[start:start + self.b]
        real = len(mine)
        batch = _load(self.source, mine, self.epoch) if real else self._zeros(0)
        image, label = batch["image"], np.asarray(batch["label"], np.int32)
        if real < self.b:
            pad = self._zeros(self.b - real)
            image = np.concatenate([image, pad["image"].astype(image.dtype)])
            label = np.concatenate([label, pad["label"]])
        return {"image": image, "label": label, "mask": np.arange(self.b) < real}

    def sample(self, j: int) -> dict[str, Any]:
        k, s = divmod(int(j), self.b)
        pos = k * self.batch_size + self.lo + s
        if pos >= len(self.order):
            pad = self._zeros(1)
            return {"image": pad["image"][0], "label": np.int32(0), "mask": np.False_}
        i = int(self.order[pos])
        x = self.source.get(i, epoch=self.epoch) if hasattr(self.source, "get") else self.source[i]
        return {"image": np.asarray(x["image"]), "label": np.int32(x["label"]), "mask": np.True_}


def _check(batch_size, process_index, process_count, seed, epoch) -> tuple:
    batch_size = check_int("batch_size", batch_size, 1)
    process_count = check_int("process_count", process_count, 1)
    process_index = check_int("process_index", process_index, 0)
    if process_index >= process_count:
        raise ValueError(f"process_index must be < process_count ({process_count}), got {process_index}")
    if batch_size % process_count:
        raise ValueError(f"batch_size ({batch_size}) must be a multiple of process_count ({process_count})")
    return batch_size, process_index, process_count, check_int("seed", seed, 0), \
        check_int("epoch", epoch, 0)


def epoch_dataset(source: Any, batch_size: int, *, shuffle: bool, seed: int, epoch: int,
                  process_index: int = 0, process_count: int = 1, drop_remainder: bool = True,
                  per_sample: bool = False) -> grain.MapDataset:
    """One epoch of this process's share as a grain ``MapDataset`` (random access, so any
    position of the epoch can be read first). Element k is this process's part of global batch
    k (module docstring); with ``per_sample=True`` element j is slot j % b of local batch
    j // b instead ({"image", "label", "mask"} of one sample, zeros and False for padding)."""
    batch_size, process_index, process_count, seed, epoch = _check(
        batch_size, process_index, process_count, seed, epoch)
    order = epoch_order(len(source), shuffle=bool(shuffle), seed=seed, epoch=epoch)
    share = _Share(source, order, batch_size, process_index, process_count, epoch)
    total = num_batches(source, batch_size, bool(drop_remainder))
    if per_sample:
        return grain.MapDataset.range(total * share.b).map(share.sample)
    return grain.MapDataset.range(total).map(share.batch)


class Batches(Iterator):
    """The iterator :func:`batches` returns: grain's checkpointable iterator over one epoch
    (of batches, or of samples batched by grain: ``per`` samples a batch). ``get_state()`` is
    ``{"epoch": e, "batch": batches handed out}``, the data position the trainer saves in its
    checkpoint; ``close()`` stops grain's threads."""

    def __init__(self, it: Any, epoch: int, per: int = 1):
        self._it, self.epoch, self._per = it, epoch, per

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._it)

    def get_state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": int(self._it.get_state()["next_index"]) // self._per}

    def close(self) -> None:
        getattr(self._it, "close", lambda: None)()


def batches(source: Any, batch_size: int, *, shuffle: bool, seed: int, epoch: int,
            process_index: int = 0, process_count: int = 1, drop_remainder: bool = True,
            start_batch: int = 0, prefetch: int = 2, workers: int | None = None) -> Batches:
    """Yield this process's batches {"image": (b, ...), "label": (b,) int32, "mask": (b,) bool},
    b = batch_size // process_count (``batch_size`` is the global batch), from batch
    ``start_batch`` of epoch ``epoch`` on, ``prefetch`` batches ahead on grain's threads
    (0: none, everything loads in the caller's thread). ``workers`` threads load (default: the
    source's ``workers``, else 1). A source that decodes files (it has ``workers``) is read
    sample by sample and batched by grain, so its samples decode in parallel even when an
    epoch has a single batch; other sources are read a batch at a time (``get_batch``), and an
    ``in_memory`` source's batches (slices of arrays) are built in the caller's thread, where
    they cost less than a hand-over from a loader thread. The output depends on neither
    ``prefetch`` nor ``workers``.
    """
    per_sample = hasattr(source, "workers")
    ds = epoch_dataset(source, batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                       process_index=process_index, process_count=process_count,
                       drop_remainder=drop_remainder, per_sample=per_sample)
    per = batch_size // process_count if per_sample else 1
    total = len(ds) // per
    start_batch = check_int("start_batch", start_batch, 0)
    if start_batch > total:
        raise ValueError(f"start_batch ({start_batch}) is past the epoch's {total} batches")
    prefetch = check_int("prefetch", prefetch, 0)
    if getattr(source, "in_memory", False):
        prefetch = 0
    workers = check_int("workers", getattr(source, "workers", 1) if workers is None else workers, 1)
    ahead = max(prefetch * per, workers)
    options = grain.ReadOptions(num_threads=workers if prefetch else 0,
                                prefetch_buffer_size=ahead if prefetch else 0)
    stream = ds.to_iter_dataset(options)
    it = iter(stream.batch(per) if per_sample else stream)
    it.set_state({"next_index": start_batch * per})
    if prefetch and hasattr(it, "start_prefetch"):
        it.start_prefetch()  # start loading now, as a data loader does, not at the first next()
    return Batches(it, int(epoch), per)
