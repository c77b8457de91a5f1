"""Host decode + augment throughput on generated ImageNet-sized JPEGs, and of the whole input
pipeline (``jaxeq.data.batches`` on grain), for ``jaxeq data throughput`` / ``jaxeq bench data``.

The JPEGs are cut from the embedded scikit-image photographs and resized to ImageNet-like
sizes (longer side 500, aspect 4:3 or 3:4, quality 90; real ImageNet train images average
about 400x350 and 110 KB), so decoding cost resembles real photographs rather than noise.
Encoding is not timed. Both the training path (decode + random-resized-crop 224 + flip) and
the eval path (decode + resize 256 + center-crop 224) are timed, with one thread and with
``workers`` threads.

The pipeline rows run :func:`jaxeq.data.batches` (batch 32, shuffled, short epochs repeated)
over the same JPEGs written as a class folder (:class:`jaxeq.data.folder.Folder`, train
augmentation) and over the red_green synthetic training set, with 1 and with ``workers`` grain
threads.
Besides wall-clock images/s they give images per CPU-second of the process (all its threads):
the rate one busy core sustains, which is what sizing a host needs and which holds when other
jobs share the machine.
"""
from __future__ import annotations

import io
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from jaxeq import _checks
from jaxeq.data import transforms
from jaxeq.data._common import rng
from jaxeq.data.quadrant_imagenet import embedded_photos

TARGET_IMAGES_PER_S = 3000  # ResNet-50 training on one modern GPU


def make_jpegs(num_images: int, seed: int = 0, quality: int = 90) -> list[bytes]:
    """``num_images`` JPEG byte strings of ImageNet-like size, cut from the embedded photos."""
    photos = [img for _, img in embedded_photos()]
    g = rng(seed, 51)
    out = []
    for _ in range(num_images):
        img = photos[int(g.integers(len(photos)))]
        h, w = img.shape[:2]
        ch = int(g.integers(min(h, 375), h + 1))
        cw = int(g.integers(min(w, 375), w + 1))
        y, x = int(g.integers(h - ch + 1)), int(g.integers(w - cw + 1))
        size = (500, 375) if g.integers(2) else (375, 500)
        pil = Image.fromarray(img[y:y + ch, x:x + cw]).resize(size, Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def _rate(fn, jpegs: list[bytes], workers: int) -> float:
    fn(0)  # warm-up (Pillow plugin loading)
    start = time.perf_counter()
    if workers == 1:
        for i in range(len(jpegs)):
            fn(i)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fn, range(len(jpegs))))
    return len(jpegs) / (time.perf_counter() - start)


def _pipeline_rate(source, workers: int, min_seconds: float,
                   batch_size: int = 32) -> tuple[float, float]:
    """(wall images/s, images per CPU-second) of shuffled epochs of ``batches``: epochs
    0, 1, ... until ``min_seconds`` have passed (short epochs are repeated)."""
    from jaxeq.data.pipeline import batches

    warm = batches(source, batch_size, shuffle=True, seed=0, epoch=99, workers=workers,
                   drop_remainder=False)
    next(warm)  # file cache, Pillow plugins, grain's first iterator
    warm.close()
    start, cpu, n, epoch = time.perf_counter(), time.process_time(), 0, 0
    while epoch == 0 or time.perf_counter() - start < min_seconds:
        for batch in batches(source, batch_size, shuffle=True, seed=0, epoch=epoch,
                             workers=workers, drop_remainder=False):
            n += int(batch["mask"].sum())
        epoch += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return n / wall, n / max(cpu, 1e-9)


def pipeline_rates(jpegs: list[bytes], workers: int, seed: int = 0,
                   min_seconds: float = 0.25) -> dict:
    """Rows of the grain pipeline on a folder of ``jpegs`` and on red_green (module docstring)."""
    from jaxeq.data import synthetic
    from jaxeq.data.folder import Folder

    out = {}
    with tempfile.TemporaryDirectory(prefix="jaxeq-throughput-") as root:
        for k, jpeg in enumerate(jpegs):
            os.makedirs(os.path.join(root, f"c{k % 4}"), exist_ok=True)
            with open(os.path.join(root, f"c{k % 4}", f"{k}.jpg"), "wb") as f:
                f.write(jpeg)
        sources = {"folder": Folder(root, "train", seed, val_fraction=0.0, test_fraction=0.0),
                   "red_green": synthetic.red_green("train", seed=seed)}
        for name, source in sources.items():
            for threads in sorted({1, workers}):
                wall, per_cpu = _pipeline_rate(source, threads, min_seconds)
                out[f"pipeline_{name}_images_per_s_{threads}_threads"] = round(wall, 1)
                out[f"pipeline_{name}_images_per_cpu_s_{threads}_threads"] = round(per_cpu, 1)
            out[f"pipeline_{name}_cores_for_{TARGET_IMAGES_PER_S}_images_per_s"] = \
                math.ceil(TARGET_IMAGES_PER_S / out[f"pipeline_{name}_images_per_cpu_s_1_threads"])
    return out


def measure(num_images: int = 256, workers: int | None = None, seed: int = 0) -> dict:
    """Images/s of the train and eval host transforms and of the grain pipeline
    (:func:`pipeline_rates`), and the cores needed to feed ResNet-50 training at 3000 images/s
    (transforms: from the single-thread rate; pipeline: from images per CPU-second)."""
    _checks.int_at_least("num_images (--num-images)", num_images, 1)
    _checks.int_at_least("workers (--workers)", workers, 0, allow_none=True)  # 0: all cores
    workers = workers or os.cpu_count() or 1
    jpegs = make_jpegs(num_images, seed)

    def train(i):
        return transforms.train_image(jpegs[i], rng(seed, 7, 0, i))

    def evaluate(i):
        return transforms.eval_image(jpegs[i])

    result = {"num_images": num_images, "workers": workers, "host_cores": os.cpu_count(),
              "mean_jpeg_kb": round(float(np.mean([len(j) for j in jpegs])) / 1024, 1)}
    for name, fn in (("train", train), ("eval", evaluate)):
        one = _rate(fn, jpegs, 1)
        many = _rate(fn, jpegs, workers) if workers > 1 else one
        result[f"{name}_images_per_s_1_thread"] = round(one, 1)
        result[f"{name}_images_per_s_{workers}_threads"] = round(many, 1)
        result[f"{name}_cores_for_{TARGET_IMAGES_PER_S}_images_per_s"] = math.ceil(TARGET_IMAGES_PER_S / one)
    result.update(pipeline_rates(jpegs, workers, seed))
    return result
