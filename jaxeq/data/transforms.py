"""Host-side image preprocessing with Pillow (decode, resize, crop, flip), returning uint8.

Inputs may be encoded bytes (JPEG/PNG...), a path, or a uint8 (H, W, C) array. JPEGs are
decoded with Pillow's ``draft`` (DCT-domain downscaling by 1/2, 1/4 or 1/8) whenever the
image is larger than needed, which is most of the decode cost saved; the result never has
fewer pixels than the output needs, so quality is kept. Crops and resizes are fused into one
``Image.resize(box=...)`` call (antialiased bilinear). Pillow releases the GIL while decoding
and resizing, so a thread pool scales across cores.
"""
from __future__ import annotations

import io
import math
import os
from typing import Any

import numpy as np
from PIL import Image

_RESAMPLE = Image.Resampling.BILINEAR


def open_image(data: Any) -> Image.Image:
    """Bytes, a path or a uint8 array -> a (lazy) PIL image."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(data)))
    if isinstance(data, (str, os.PathLike)):
        return Image.open(data)
    arr = np.asarray(data)
    if arr.dtype != np.uint8:
        raise TypeError(f"image array must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"image array must be (H, W) or (H, W, C), got shape {arr.shape}")
    return Image.fromarray(arr)


def _draft(img: Image.Image, need_w: float, need_h: float) -> tuple[float, float]:
    """Let a JPEG decode at reduced size (still >= need); returns the (x, y) scale applied."""
    w0, h0 = img.size
    if img.format == "JPEG":
        img.draft("RGB", (max(1, math.ceil(need_w)), max(1, math.ceil(need_h))))
    return img.size[0] / w0, img.size[1] / h0


def _rgb_uint8(img: Image.Image) -> np.ndarray:
    if img.mode != "RGB":
        img = img.convert("RGB")  # grayscale and CMYK JPEGs exist in ImageNet
    return np.asarray(img, np.uint8)


def center_crop_box(w: int, h: int, resize: int, crop: int) -> tuple[float, float, float, float]:
    """Box (in original pixels) that 'resize the shorter side to ``resize``, center-crop
    ``crop``' keeps (the torchvision Resize + CenterCrop geometry)."""
    scale = resize / min(w, h)
    rw, rh = round(w * scale), round(h * scale)
    left, top = int(round((rw - crop) / 2.0)), int(round((rh - crop) / 2.0))
    return (left / scale, top / scale, (left + crop) / scale, (top + crop) / scale)


def eval_image(data: Any, *, resize: int = 256, crop: int = 224) -> np.ndarray:
    """Resize the shorter side to ``resize`` and center-crop ``crop`` x ``crop`` -> uint8 RGB."""
    if crop > resize:
        raise ValueError(f"crop ({crop}) must be <= resize ({resize})")
    img = open_image(data)
    w0, h0 = img.size
    box = center_crop_box(w0, h0, resize, crop)
    sx, sy = _draft(img, w0 * resize / min(w0, h0), h0 * resize / min(w0, h0))
    box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    return _rgb_uint8(img.resize((crop, crop), _RESAMPLE, box=box))


def random_resized_crop_box(w: int, h: int, g: np.random.Generator,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """The Inception / torchvision RandomResizedCrop box: area fraction in ``scale``, aspect
    ratio log-uniform in ``ratio``, 10 tries, else a center crop clamped to ``ratio``."""
    area = w * h
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * g.uniform(*scale)
        aspect = math.exp(g.uniform(*log_r))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            left = int(g.integers(0, w - cw + 1))
            top = int(g.integers(0, h - ch + 1))
            return left, top, left + cw, top + ch
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        cw, ch = int(round(h * ratio[1])), h
    else:
        cw, ch = w, h
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def train_image(data: Any, g: np.random.Generator, *, size: int = 224, flip: bool = True,
                scale: tuple[float, float] = (0.08, 1.0)) -> np.ndarray:
    """Random-resized-crop to ``size`` x ``size`` and (optionally) a horizontal flip with
    probability 1/2, all randomness drawn from ``g`` -> uint8 RGB."""
    img = open_image(data)
    w0, h0 = img.size
    l, t, r, b = random_resized_crop_box(w0, h0, g, scale=scale)
    do_flip = flip and bool(g.integers(0, 2))
    sx, sy = _draft(img, w0 * size / (r - l), h0 * size / (b - t))
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    out = _rgb_uint8(img.resize((size, size), _RESAMPLE, box=(l * sx, t * sy, r * sx, b * sy)))
    return out[:, ::-1].copy() if do_flip else out


def resize_array(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3) with antialiased bilinear resizing."""
    return _rgb_uint8(open_image(image).resize((size, size), _RESAMPLE))
