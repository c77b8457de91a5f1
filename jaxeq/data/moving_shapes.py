"""Moving shapes: the CPU analog of E5's action recognition (NOT UCF101 / HMDB51).

A video is a textured square moving over a static textured background; the class is the motion
pattern (:data:`CLASSES`): translation right / left / down / up, rotation clockwise /
counter-clockwise, growing / shrinking. Every video draws, from its own seeded stream and
independently of its class, the object's centre at the middle of the video (uniform over the
central half of the frame), its size, textures and speed; a translation moves the centre
symmetrically about that point, the other motions keep it fixed. So where the object is (its
centre averaged over the video) says nothing about the class: only the motion does.

Videos have ``frames`` frames of ``size`` x ``size``; the splits are independent streams of the
seed (train / val / test), ``per_class`` videos per class (classes alternate: video i has label
i % 8). Clips are sampled as the official recipe (:class:`jaxeq.data.video.VideoClips`: a
random temporal position for training, several clips per video for evaluation) with no spatial
augmentation: a left-right flip would swap the left / right and the rotation classes.
"""
from __future__ import annotations

import functools

import numpy as np

from jaxeq import _checks
from jaxeq.data._common import check_split, rng
from jaxeq.data.video import ArrayVideos, VideoClips

CLASSES = ("right", "left", "down", "up", "rotate_cw", "rotate_ccw", "grow", "shrink")
SPLITS = ("train", "val", "test")
_STREAM = {"train": 0, "val": 1, "test": 2}
DEFAULT_PER_CLASS = {"train": 16, "val": 8, "test": 16}
_DIRECTION = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}


def _texture(g: np.random.Generator, side: int, block: int, lo: int, hi: int) -> np.ndarray:
    """uint8 (side, side, 3): random colours constant on ``block`` x ``block`` cells."""
    cells = -(-side // block)
    small = g.integers(lo, hi + 1, size=(cells, cells, 3)).astype(np.uint8)
    return np.repeat(np.repeat(small, block, 0), block, 1)[:side, :side]


def video_params(label: int, frames: int, size: int, g: np.random.Generator) -> dict:
    """Per frame: object centre (frames, 2) as (y, x), angle (rad) and scale; plus the drawn
    mid-video centre and half-side. Everything but the motion is drawn before the class is
    looked at, so it is distributed the same for every class."""
    mid = g.uniform(size * 0.25, size * 0.75, size=2)
    half = g.uniform(size / 8, size / 5)
    speed = g.uniform(0.5, 0.9) * size / 32          # pixels per frame
    omega = np.deg2rad(g.uniform(8.0, 15.0))         # radians per frame
    rate = g.uniform(0.025, 0.04)                    # log-scale per frame
    theta0 = g.uniform(0, np.pi / 2)
    t = np.arange(frames) - (frames - 1) / 2.0       # symmetric about the middle frame
    name = CLASSES[label]
    centre = np.repeat(mid[None], frames, 0)
    angle = np.full(frames, theta0)
    scale = np.ones(frames)
    if name in _DIRECTION:
        centre = centre + speed * t[:, None] * np.asarray(_DIRECTION[name], np.float64)
    elif name.startswith("rotate"):
        angle = theta0 + (omega if name == "rotate_cw" else -omega) * t
    else:
        scale = np.exp((rate if name == "grow" else -rate) * t)
    return {"centre": centre, "angle": angle, "scale": scale, "mid": mid, "half": half}


def render(params: dict, size: int, background: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """uint8 (frames, size, size, 3): the square (nearest-neighbour texture lookup in its own
    frame) over the background, frame by frame."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    half, side = params["half"], texture.shape[0]
    out = np.repeat(background[None], len(params["angle"]), 0)
    for f, ((cy, cx), a, s) in enumerate(zip(params["centre"], params["angle"], params["scale"])):
        dy, dx = yy - cy, xx - cx
        # object coordinates: rotate back by the angle, undo the scale
        u = (np.cos(a) * dx + np.sin(a) * dy) / s
        v = (-np.sin(a) * dx + np.cos(a) * dy) / s
        inside = (np.abs(u) < half) & (np.abs(v) < half)
        iu = np.clip(((u + half) / (2 * half) * side).astype(int), 0, side - 1)
        iv = np.clip(((v + half) / (2 * half) * side).astype(int), 0, side - 1)
        out[f][inside] = texture[iv[inside], iu[inside]]
    return out


@functools.lru_cache(maxsize=16)
def moving_shapes_videos(split: str, seed: int, per_class: int, frames: int, size: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 videos (n, frames, size, size, 3), labels (n,), mid-video centres (n, 2))."""
    n = per_class * len(CLASSES)
    videos = np.empty((n, frames, size, size, 3), np.uint8)
    labels = np.arange(n, dtype=np.int32) % len(CLASSES)
    mids = np.empty((n, 2))
    for i in range(n):
        g = rng(seed, 71, _STREAM[split], i)
        p = video_params(int(labels[i]), frames, size, g)
        background = _texture(g, size, 4, 40, 110)   # low contrast, darker
        texture = _texture(g, 8, 2, 80, 255)         # high contrast object texture
        videos[i] = render(p, size, background, texture)
        mids[i] = p["mid"]
    videos.setflags(write=False)
    return videos, labels, mids


def moving_shapes(split: str = "train", seed: int = 0, *, per_class: int | None = None,
                  frames: int = 16, size: int = 24, duration: int = 8,
                  val_clips: int = 3) -> VideoClips:
    """A moving-shapes split (module docstring) as clips of ``duration`` frames, ``size`` px.
    ``per_class``: videos per class, an int or ``{split: int}`` (default 16 / 8 / 16)."""
    check_split(split, SPLITS, "moving_shapes")
    seed = _checks.int_at_least("seed", seed, 0)
    if hasattr(per_class, "keys"):   # {split: videos per class}
        per_class = dict(per_class).get(split)
    per_class = DEFAULT_PER_CLASS[split] if per_class is None else \
        _checks.int_at_least("per_class", per_class, 1)
    frames = _checks.int_at_least("frames", frames, 1)
    size = _checks.int_at_least("size", size, 8)
    duration = _checks.int_at_least("duration", duration, 1)
    videos, labels, _ = moving_shapes_videos(split, seed, per_class, frames, size)
    store = ArrayVideos(videos, labels, CLASSES)
    return VideoClips(store, split, seed, duration=duration, size=size, val_clips=val_clips,
                      flip=False, scales=(1.0,), positions=("c",),
                      description=f"moving shapes ({split}, {per_class}/class, {frames} frames "
                                  f"of {size}px, clips of {duration}): synthetic, NOT UCF101")
