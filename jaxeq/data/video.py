"""Video clips for E5 (action recognition): UCF101 and HMDB51 as the official 3D-ResNet recipe
samples them (Kayhan & van Gemert's Exp5, built on Hara et al.'s 3D-ResNets-PyTorch).

Clip sampling (frame indices are 0-based here; the official code counts from 1):

- ``train``: one item per video; every epoch a fresh clip of ``duration`` (16) consecutive
  frames starting at a uniform position in ``[0, max(0, n - duration - 1)]`` (the official
  ``TemporalRandomCrop``), looped when the video is shorter (``LoopPadding``); spatially a
  multi-scale corner crop (side = short side x one of 1, 0.84, 0.71, 0.59, 0.5; at the centre
  or one of the four corners) resized to ``size`` (112), flipped left-right with probability
  1/2; one draw per clip, applied to all its frames.
- ``val``: the test list, ``val_clips`` (3) clips per video at ``step = max(1, ceil((n - 1 -
  duration) / (val_clips - 1)))`` from frame 0 (the official ``n_val_samples``: a short video
  gets more than 3), clip-level accuracy; this is what the official run validates on and what
  its reduce-on-plateau schedule watches.
- ``test``: the test list, consecutive non-overlapping clips from frame 0 (step ``duration``;
  the last one looped); ``video_index`` says which video each clip is of, so that a video's
  prediction is the mean of its clips' softmax scores (``video_level_top1``).
- ``val`` and ``test`` resize the short side to ``size`` and take the centre ``size`` crop.

Sources: a folder of frame folders with the official split files (:func:`ucf101`,
:func:`hmdb51`), tfds ``ucf101`` (prepared by the user with ``tfds build``; read without
TensorFlow by :mod:`jaxeq.data.tfds_prepared`) or arrays in memory (:class:`ArrayVideos`, the
synthetic analog). Items are uint8 ``(duration, size, size, 3)``; the trainer normalises them
on device.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaxeq import _checks
from jaxeq.data._common import Source, check_split, rng

VIDEO_SPLITS = ("train", "val", "test")
DURATION = 16             # frames per clip (official sample_duration)
SIZE = 112                # clip side (official sample_size)
VAL_CLIPS = 3             # official n_val_samples
SCALES = tuple(0.84089641525 ** i for i in range(5))   # official scales: 1, 0.84, ..., 0.5
CORNERS = ("c", "tl", "tr", "bl", "br")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
EXTRACT_HINT = ("extract frames first, as the official code does: ffmpeg -i VIDEO.avi -vf "
                "scale=-1:240 ROOT/CLASS/VIDEO/image_%05d.jpg")


# ----------------------------------------------------------------------------- clip indices
def loop_pad(indices, size: int) -> np.ndarray:
    """``indices`` repeated cyclically up to ``size`` (official ``LoopPadding``)."""
    idx = np.asarray(indices, np.int64)
    if idx.size == 0:
        raise ValueError("indices must not be empty")
    return np.resize(idx, size) if idx.size < size else idx[:size]


def train_clip(n_frames: int, duration: int, g: np.random.Generator) -> np.ndarray:
    """A training clip: ``duration`` frames from a uniform start in ``[0, max(0, n - duration
    - 1)]`` (official ``TemporalRandomCrop``), looped when the video is shorter."""
    begin = int(g.integers(0, max(0, n_frames - duration - 1) + 1))
    return loop_pad(np.arange(begin, min(begin + duration, n_frames)), duration)


def eval_clips(n_frames: int, duration: int, clips: int) -> list[np.ndarray]:
    """The evaluation clips of a video (official ``make_dataset``): ``clips=0`` gives
    consecutive non-overlapping clips (step ``duration``, the test protocol); ``clips >= 2``
    gives clips at ``step = max(1, ceil((n - 1 - duration) / (clips - 1)))`` (validation).
    Starts run over ``range(0, n - 1, step)`` (a one-frame video still gets one clip)."""
    _checks.int_at_least("n_frames", n_frames, 1)
    clips = _checks.int_at_least("clips", clips, 0)
    if clips == 1:
        raise ValueError("clips must be 0 (non-overlapping clips) or >= 2, got 1")
    step = (max(1, math.ceil((n_frames - 1 - duration) / (clips - 1))) if clips else duration)
    return [loop_pad(np.arange(s, min(n_frames, s + duration)), duration)
            for s in range(0, max(n_frames - 1, 1), step)]


def video_level_top1(scores: np.ndarray, video_index: Sequence[int], labels: Sequence[int]
                     ) -> tuple[float, int]:
    """(% of videos whose mean clip score has its argmax at the video's label, videos):
    ``scores`` (clips, classes) softmax per clip, ``video_index`` / ``labels`` per clip."""
    scores = np.asarray(scores, np.float64)
    vid = np.asarray(video_index, np.int64)
    lab = np.asarray(labels, np.int64)
    ids, inverse = np.unique(vid, return_inverse=True)
    sums = np.zeros((len(ids), scores.shape[1]))
    np.add.at(sums, inverse, scores)
    counts = np.bincount(inverse, minlength=len(ids))[:, None]
    video_label = np.zeros(len(ids), np.int64)
    video_label[inverse] = lab
    correct = np.argmax(sums / counts, axis=1) == video_label
    return 100.0 * float(correct.mean()), int(len(ids))


# ----------------------------------------------------------------------------- spatial
def corner_box(h: int, w: int, scale: float, position: str) -> tuple[int, int, int, int]:
    """(y1, x1, y2, x2) of the official ``MultiScaleCornerCrop``: side ``int(min(h, w) *
    scale)`` at the centre (``c``; half-side both ways) or a corner."""
    _checks.choice("position", position, CORNERS)
    side = int(min(h, w) * scale)
    if position == "c":
        cy, cx, half = h // 2, w // 2, side // 2
        return cy - half, cx - half, cy + half, cx + half
    y1 = 0 if position[0] == "t" else h - side
    x1 = 0 if position[1] == "l" else w - side
    return y1, x1, y1 + side, x1 + side


def _resize(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of uint8 frames (T, H, W, 3) to ``hw`` (PIL, as the official code)."""
    if frames.shape[1:3] == tuple(hw):
        return frames
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(f).resize((hw[1], hw[0]), Image.BILINEAR))
                     for f in frames])


def train_view(frames: np.ndarray, size: int, g: np.random.Generator, *,
               scales: Sequence[float] = SCALES, positions: Sequence[str] = CORNERS,
               flip: bool = True) -> np.ndarray:
    """The official training transform of one clip: one multi-scale corner crop resized to
    ``size``, then a left-right flip with probability 1/2, the same for all frames."""
    scale = scales[int(g.integers(len(scales)))]
    position = positions[int(g.integers(len(positions)))]
    y1, x1, y2, x2 = corner_box(frames.shape[1], frames.shape[2], scale, position)
    out = _resize(frames[:, y1:y2, x1:x2], (size, size))
    if flip and g.random() < 0.5:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def eval_view(frames: np.ndarray, size: int) -> np.ndarray:
    """Short side resized to ``size`` (official ``Scale``), then the centre ``size`` crop."""
    h, w = frames.shape[1:3]
    if h <= w:
        hw = (size, int(size * w / h))
    else:
        hw = (int(size * h / w), size)
    out = _resize(frames, hw)
    y1 = int(round((out.shape[1] - size) / 2.0))
    x1 = int(round((out.shape[2] - size) / 2.0))
    return np.ascontiguousarray(out[:, y1:y1 + size, x1:x1 + size])


# ----------------------------------------------------------------------------- video stores
class ArrayVideos:
    """Videos held in memory: uint8 (N, L, H, W, 3) (or a list of (L_i, H, W, 3))."""

    def __init__(self, videos, labels, class_names: Sequence[str]):
        self.videos, self.labels = videos, np.asarray(labels, np.int32)
        self.class_names = tuple(class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def n_frames(self, i: int) -> int:
        return int(len(self.videos[i]))

    def frames(self, i: int, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.videos[i])[np.asarray(indices)]


class FrameFolderVideos:
    """Videos as folders of frames (``image_00001.jpg`` ... or any sorted jpg / png files; an
    ``n_frames`` file, as the official extraction writes, is not needed)."""

    def __init__(self, folders: Sequence[Path], labels, class_names: Sequence[str]):
        self.folders, self.labels = list(folders), np.asarray(labels, np.int32)
        self.class_names = tuple(class_names)
        self._files: dict[int, list[Path]] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def _frame_files(self, i: int) -> list[Path]:
        if i not in self._files:
            files = sorted(p for p in self.folders[i].iterdir()
                           if p.suffix.lower() in FRAME_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"{self.folders[i]} holds no frames (*.jpg, *.png)")
            self._files[i] = files
        return self._files[i]

    def n_frames(self, i: int) -> int:
        return len(self._frame_files(i))

    def frames(self, i: int, indices: np.ndarray) -> np.ndarray:
        from PIL import Image
        files = self._frame_files(i)
        decoded = {}
        for k in dict.fromkeys(int(j) for j in indices):
            with Image.open(files[k]) as im:
                decoded[k] = np.asarray(im.convert("RGB"))
        return np.stack([decoded[int(j)] for j in indices])


class TfdsVideos:
    """A split of tfds ``ucf101`` as ``tfds build`` prepared it (array_record), read without
    TensorFlow (:mod:`jaxeq.data.tfds_prepared`: tfds' own reader needs TensorFlow for its
    Video feature). Frames stay JPEG-encoded; only a clip's frames are decoded. Opening a
    split reads every record once for its label and frame count."""

    def __init__(self, name: str, split: str, data_dir: str | None):
        from jaxeq.data.tfds_prepared import PreparedSplit, prepared_folder
        try:
            self.split = PreparedSplit(prepared_folder(name, data_dir), split)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e} (or pass root=FRAME_FOLDERS)") from None
        self.class_names = self.split.label_names("label")
        labels, counts = [], []
        for i in range(len(self.split)):
            example = self.split.example(i)
            labels.append(int(example["label"][0]))
            counts.append(len(example["video"]))
        self.labels = np.array(labels, np.int32)
        self._n = np.array(counts, np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def n_frames(self, i: int) -> int:
        return int(self._n[i])

    def frames(self, i: int, indices: np.ndarray) -> np.ndarray:
        video = self.split.example(i)["video"]
        return np.stack([_decoded(video[int(j)]) for j in indices])


def _decoded(frame) -> np.ndarray:
    if isinstance(frame, (bytes, np.bytes_)):
        import io
        from PIL import Image
        with Image.open(io.BytesIO(frame)) as im:
            return np.asarray(im.convert("RGB"))
    return np.asarray(frame)


# ----------------------------------------------------------------------------- the source
class VideoClips(Source):
    """Clips of a video store for one split (module docstring). ``video_index`` (per item)
    names the video of each clip; in ``train`` items are videos."""

    def __init__(self, store, split: str, seed: int, *, duration: int = DURATION,
                 size: int = SIZE, val_clips: int = VAL_CLIPS, flip: bool = True,
                 scales: Sequence[float] = SCALES, positions: Sequence[str] = CORNERS,
                 description: str = ""):
        self.store, self.split, self.seed = store, split, seed
        self.duration, self.size, self.flip = duration, size, flip
        self.scales, self.positions = tuple(scales), tuple(positions)
        self.num_classes = len(store.class_names)
        self.description = description
        if split == "train":
            self.video_index = np.arange(len(store), dtype=np.int64)
            self.clips = None
        else:
            per_video = [eval_clips(store.n_frames(v), duration, val_clips if split == "val" else 0)
                         for v in range(len(store))]
            self.video_index = np.array([v for v, cs in enumerate(per_video) for _ in cs], np.int64)
            self.clips = [c for cs in per_video for c in cs]
        self.labels = store.labels[self.video_index]

    def __len__(self) -> int:
        return len(self.video_index)

    def get(self, i: int, *, epoch: int = 0) -> dict[str, np.ndarray]:
        i = self._index(i)
        v = int(self.video_index[i])
        if self.clips is None:
            g = rng(self.seed, 61, epoch, v)
            frames = self.store.frames(v, train_clip(self.store.n_frames(v), self.duration, g))
            image = train_view(frames, self.size, g, scales=self.scales,
                               positions=self.positions, flip=self.flip)
        else:
            image = eval_view(self.store.frames(v, self.clips[i]), self.size)
        return {"image": image, "label": self.labels[i]}


# ----------------------------------------------------------------------------- UCF101, HMDB51
def _split_id(value: Any) -> int:
    if isinstance(value, bool) or value not in (1, 2, 3):
        raise ValueError(f"split_id must be one of (1, 2, 3), got {value!r}")
    return int(value)


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: expected {path}")
    return path


def _frame_folder(root: Path, cls: str, video_file: str) -> Path:
    stem = Path(video_file).stem
    folder = root / cls / stem
    if folder.is_dir():
        return folder
    if any((root / cls / (stem + ext)).is_file() for ext in (".avi", ".mp4")):
        raise FileNotFoundError(f"{root / cls / stem} has no frame folder ({EXTRACT_HINT})")
    raise FileNotFoundError(f"video {cls}/{stem} listed in the split file is missing: expected "
                            f"the frame folder {folder}")


def ucf101_lists(splits_dir: Path, split_id: int) -> tuple[list[str], list[tuple[str, str]],
                                                             list[tuple[str, str]]]:
    """(class names in classInd.txt order, train [(class, video file)], test [...])."""
    names = []
    for line in _need(splits_dir / "classInd.txt", "UCF101 classInd.txt").read_text().split("\n"):
        if line.strip():
            names.append(line.split()[1])

    def entries(fname: str) -> list[tuple[str, str]]:
        path = _need(splits_dir / fname, f"UCF101 split file {fname}")
        rows = [ln.split()[0] for ln in path.read_text().split("\n") if ln.strip()]
        return [(r.split("/")[0], r.split("/")[1]) for r in rows]
    return (names, entries(f"trainlist0{split_id}.txt"), entries(f"testlist0{split_id}.txt"))


def hmdb51_lists(splits_dir: Path, split_id: int) -> tuple[list[str], list[tuple[str, str]],
                                                             list[tuple[str, str]]]:
    """(sorted class names, train [(class, video file)], test [...]) from the official
    ``<class>_test_split<N>.txt`` files (1 = train, 2 = test, 0 = unused)."""
    files = sorted(splits_dir.glob(f"*_test_split{split_id}.txt")) if splits_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"HMDB51 split files: expected {splits_dir}/<class>_test_split"
                                f"{split_id}.txt (51 files, from test_train_splits.rar)")
    names = sorted({f.name[:-len(f"_test_split{split_id}.txt")] for f in files})
    train, test = [], []
    for f in files:
        cls = f.name[:-len(f"_test_split{split_id}.txt")]
        for line in f.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2 and parts[1] in ("1", "2"):
                (train if parts[1] == "1" else test).append((cls, parts[0]))
    return names, train, test


def _folder_clips(dataset: str, lists, root, split: str, seed: int, kwargs) -> VideoClips:
    names, train, test = lists
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset} frame folders: expected the directory {root} "
                                f"(ROOT/CLASS/VIDEO/image_00001.jpg ...)")
    entries = train if split == "train" else test
    index = {n: k for k, n in enumerate(names)}
    folders = [_frame_folder(root, cls, f) for cls, f in entries]
    store = FrameFolderVideos(folders, [index[cls] for cls, _ in entries], names)
    return VideoClips(store, split, seed, description=f"{dataset} {split} ({len(store)} videos, "
                                                      f"{root})", **kwargs)


def ucf101(split: str = "train", seed: int = 0, *, root: str | os.PathLike | None = None,
           splits_dir: str | os.PathLike | None = None, split_id: int = 1,
           tfds_name: str = "ucf101/ucf101_1", data_dir: str | None = None,
           **kwargs: Any) -> VideoClips:
    """UCF101 split ``split_id`` (1-3). ``root``: frame folders ROOT/CLASS/VIDEO/ with the
    official ``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt`` in ``splits_dir``
    (default ``root``); without ``root``: tfds ``tfds_name`` (its train / test splits).
    ``kwargs``: ``duration``, ``size``, ``val_clips``, ``flip`` (:class:`VideoClips`)."""
    check_split(split, VIDEO_SPLITS, "ucf101")
    split_id = _split_id(split_id)
    if root is None:
        store = TfdsVideos(tfds_name, "train" if split == "train" else "test", data_dir)
        return VideoClips(store, split, seed, description=f"tfds {tfds_name} {split}", **kwargs)
    lists = ucf101_lists(Path(splits_dir or root).expanduser(), split_id)
    return _folder_clips("UCF101", lists, root, split, seed, kwargs)


def hmdb51(split: str = "train", seed: int = 0, *, root: str | os.PathLike | None = None,
           splits_dir: str | os.PathLike | None = None, split_id: int = 1,
           **kwargs: Any) -> VideoClips:
    """HMDB51 split ``split_id`` (1-3): frame folders ROOT/CLASS/VIDEO/ and the official
    ``<class>_test_split<N>.txt`` files in ``splits_dir`` (default ``root``)."""
    check_split(split, VIDEO_SPLITS, "hmdb51")
    split_id = _split_id(split_id)
    if root is None:
        raise FileNotFoundError("HMDB51 needs root=DIR: frame folders DIR/CLASS/VIDEO/ and the "
                                "official <class>_test_split<N>.txt files (in DIR or splits_dir)")
    lists = hmdb51_lists(Path(splits_dir or root).expanduser(), split_id)
    return _folder_clips("HMDB51", lists, root, split, seed, kwargs)
