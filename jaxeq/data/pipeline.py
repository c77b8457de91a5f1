"""Batches for one process of a (possibly multi-host) run, deterministic from (seed, epoch, step).

The order of an epoch is a seeded permutation of the whole source (the same on every process).
Global batch k is positions [k B, (k + 1) B) of that order; process p loads only its contiguous
share, slots [p b, (p + 1) b) with b = B / process_count. Concatenating the processes' batches
in process order therefore gives the same global batch whatever the process count, and the pair
(epoch, start_batch) fixes exactly what comes next (exact resume). With drop_remainder=False the
last global batch is padded with zero images and ``mask`` marks the real samples, so evaluation
counts every sample exactly once.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

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
    if hasattr(source, "get_batch"):
        return source.get_batch(list(indices), epoch=epoch)
    samples = [source.get(int(i), epoch=epoch) if hasattr(source, "get") else source[int(i)]
               for i in indices]
    return {"image": np.stack([np.asarray(s["image"]) for s in samples]),
            "label": np.array([s["label"] for s in samples], np.int32)}


def _generate(source, batch_size, shuffle, seed, epoch, process_index, process_count,
              drop_remainder, start_batch) -> Iterator[dict[str, np.ndarray]]:
    b = batch_size // process_count
    order = epoch_order(len(source), shuffle=shuffle, seed=seed, epoch=epoch)
    spec = None
    for k in range(start_batch, num_batches(source, batch_size, drop_remainder)):
        global_positions = order[k * batch_size:(k + 1) * batch_size]
        mine = global_positions[process_index * b:(process_index + 1) * b]
        if len(mine):
            batch = _load(source, mine, epoch)
            batch["label"] = np.asarray(batch["label"], np.int32)
            spec = spec or (batch["image"].shape[1:], batch["image"].dtype)
        else:  # this process's share of the last batch is all padding
            if spec is None:
                first = _load(source, order[:1], epoch)["image"]
                spec = (first.shape[1:], first.dtype)
            batch = {"image": np.zeros((0, *spec[0]), spec[1]), "label": np.zeros(0, np.int32)}
        real = len(mine)
        if real < b:
            batch["image"] = np.concatenate(
                [batch["image"], np.zeros((b - real, *batch["image"].shape[1:]), batch["image"].dtype)])
            batch["label"] = np.concatenate([batch["label"], np.zeros(b - real, np.int32)])
        batch["mask"] = np.arange(b) < real
        yield batch


def batches(source: Any, batch_size: int, *, shuffle: bool, seed: int, epoch: int,
            process_index: int = 0, process_count: int = 1, drop_remainder: bool = True,
            start_batch: int = 0, prefetch: int = 2) -> Iterator[dict[str, np.ndarray]]:
    """Yield this process's batches {"image": (b, ...), "label": (b,) int32, "mask": (b,) bool},
    b = batch_size // process_count (``batch_size`` is the global batch). ``prefetch`` batches
    are prepared ahead on a background thread (0: none); the output does not depend on it.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    process_count = check_int("process_count", process_count, 1)
    process_index = check_int("process_index", process_index, 0)
    if process_index >= process_count:
        raise ValueError(f"process_index must be < process_count ({process_count}), got {process_index}")
    if batch_size % process_count:
        raise ValueError(f"batch_size ({batch_size}) must be a multiple of process_count ({process_count})")
    seed, epoch = check_int("seed", seed, 0), check_int("epoch", epoch, 0)
    total = num_batches(source, batch_size, drop_remainder)
    start_batch = check_int("start_batch", start_batch, 0)
    if start_batch > total:
        raise ValueError(f"start_batch ({start_batch}) is past the epoch's {total} batches")
    gen = _generate(source, batch_size, bool(shuffle), seed, epoch, process_index,
                    process_count, bool(drop_remainder), start_batch)
    prefetch = check_int("prefetch", prefetch, 0)
    return gen if prefetch == 0 else _prefetched(gen, prefetch)


def _prefetched(gen: Iterator, depth: int) -> Iterator:
    """Run ``gen`` on a daemon thread, ``depth`` items ahead; stops when the consumer does."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in gen:
                if not put(item):
                    return
            put(done)
        except BaseException as e:  # hand the error to the consumer
            put(e)

    thread = threading.Thread(target=work, daemon=True, name="jaxeq-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
