"""Host decode + augment throughput on generated ImageNet-sized JPEGs (for ``jaxeq bench data``).

The JPEGs are cut from the embedded scikit-image photographs and resized to ImageNet-like
sizes (longer side 500, aspect 4:3 or 3:4, quality 90; real ImageNet train images average
about 400x350 and 110 KB), so decoding cost resembles real photographs rather than noise.
Encoding is not timed. Both the training path (decode + random-resized-crop 224 + flip) and
the eval path (decode + resize 256 + center-crop 224) are timed, with one thread and with
``workers`` threads.
"""
from __future__ import annotations

import io
import math
import os
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


def measure(num_images: int = 256, workers: int | None = None, seed: int = 0) -> dict:
    """Images/s of the train and eval host pipelines, and the cores needed to feed
    ResNet-50 training at 3000 images/s (from the single-thread rate)."""
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
    return result
