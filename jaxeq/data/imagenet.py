"""ImageNet (ILSVRC 2012) through tensorflow-datasets, read as ArrayRecord with no TensorFlow.

Serves SPEC E3 (the 200 ImageNet-A classes; eval resize 288 + center-crop 288), E4a (N images
per class; eval resize 256 + center-crop 224) and the ImageNet source of E1 (quadrant.py).

Preparation, once, on a machine with TensorFlow (``pip install -e '.[imagenet]'``) and the two
official tar files in a folder: see ``prepare_command`` (``jaxeq data prepare-imagenet``).
Reading uses ``tfds.data_source`` (random access; tfds' own protobuf parser, no TensorFlow)
with the JPEG bytes left encoded, so decoding and augmentation run here on host threads
(``transforms.py``) and images leave as uint8 (normalised on device by ``to_model_input``).

Splits: ``train`` (tfds train, optionally N per class), ``val`` and ``test`` (both the tfds
validation split: ImageNet has no public test labels, and the paper reports validation top-1).

N-per-class subsets: ``subset="random"`` draws N images per class with a seeded permutation;
``subset="official50"`` takes the paper's own 50-per-class list (its Exp4 ``train.pickle``,
shipped as ``resources/imagenet50_official.json``; see ``official_50_per_class``), matched to
the records by tfds' ``file_name`` feature.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from jaxeq.data import transforms
from jaxeq.data._common import Source, check_int, check_split, rng

IMAGENET_SPLITS = ("train", "val", "test")
TFDS_SPLIT = {"train": "train", "val": "validation", "test": "validation"}
TFDS_NAME = "imagenet2012"
MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


class DataNotPreparedError(FileNotFoundError):
    """A data set is missing; the message holds the exact command that prepares it."""


def prepare_command(manual_dir: str | os.PathLike | None = None,
                    data_dir: str | os.PathLike | None = None) -> str:
    """The exact ``tfds build`` command that prepares imagenet2012 as ArrayRecord."""
    manual = str(manual_dir) if manual_dir is not None else "DIR_WITH_ILSVRC2012_TARS"
    cmd = ["tfds", "build", TFDS_NAME, f"--manual_dir={manual}", "--file_format=array_record"]
    if data_dir is not None:
        cmd.append(f"--data_dir={data_dir}")
    return shlex.join(cmd)


def _not_prepared_message(data_dir: Any, reason: str) -> str:
    return (f"ImageNet ({TFDS_NAME}) is not prepared for reading{' in ' + str(data_dir) if data_dir else ''}: "
            f"{reason}\nPrepare it once (needs TensorFlow: pip install -e '.[imagenet]', and the files "
            f"{' and '.join(MANUAL_FILES)} from image-net.org in one folder):\n  "
            f"{prepare_command(None, data_dir)}\n(or: jaxeq data prepare-imagenet --manual-dir DIR)")


def check_manual_dir(manual_dir: str | os.PathLike) -> Path:
    """A manual dir must exist and hold the two official tar files."""
    path = Path(manual_dir).expanduser()
    reason = None
    if not path.is_dir():
        reason = f"manual dir {str(path)!r} does not exist"
    elif not any(path.iterdir()):
        reason = f"manual dir {str(path)!r} is empty"
    else:
        missing = [f for f in MANUAL_FILES if not (path / f).is_file()]
        if missing:
            reason = f"manual dir {str(path)!r} lacks {', '.join(missing)}"
    if reason:
        raise DataNotPreparedError(
            f"{reason}. It must contain {' and '.join(MANUAL_FILES)} (from image-net.org); then run:\n"
            f"  {prepare_command(path)}")
    return path


def open_split(tfds_split: str, data_dir: str | os.PathLike | None = None):
    """``tfds.data_source`` for imagenet2012 with JPEGs kept encoded where tfds allows it.

    Raises DataNotPreparedError (with the preparation command) if the data is not there.
    """
    import tensorflow_datasets as tfds  # heavy (~0.5 s): only when ImageNet is used

    kwargs = dict(split=tfds_split, data_dir=None if data_dir is None else os.fspath(data_dir),
                  download=False)
    try:
        ds = tfds.data_source(TFDS_NAME, decoders={"image": tfds.decode.SkipDecoding()}, **kwargs)
    except Exception as e:  # tfds raises several types (NotImplementedError, AssertionError, ...)
        raise DataNotPreparedError(_not_prepared_message(data_dir, f"{type(e).__name__}: {e}")) from e
    if len(ds) == 0:
        raise DataNotPreparedError(_not_prepared_message(data_dir, f"split {tfds_split!r} is empty"))
    try:
        ds[0]
    except ModuleNotFoundError:
        # Some tfds paths (its mock_data random generator) need TensorFlow to hand out encoded
        # bytes; the decoded array is just as good for us.
        ds = tfds.data_source(TFDS_NAME, **kwargs)
    return ds


@functools.cache
def imagenet_a_200_indices() -> tuple[int, ...]:
    """The 200 ImageNet-1k labels of ImageNet-A (E3); position i is the 200-class label i."""
    text = resources.files("jaxeq").joinpath("resources/imagenet_a_200_indices.json").read_text()
    return tuple(int(i) for i in json.loads(text)["indices"])


OFFICIAL50_RESOURCE = "resources/imagenet50_official.json"
SUBSETS = ("random", "official50")


@functools.cache
def official_50_per_class() -> dict[str, tuple[str, ...]]:
    """The paper's ImageNet-50 training list (E4a, 50 per class): ``{wnid: (file name, ...)}``.

    Read from package data, converted once from the official Exp4 ``train.pickle`` by
    ``scripts/convert_imagenet50_pickle.py`` (the JSON records the pickle's sha256 and the
    commit), so nothing is unpickled here. File names are tfds' ``file_name`` of the train
    split, e.g. ``n01440764_2823.JPEG``.
    """
    spec = json.loads(resources.files("jaxeq").joinpath(OFFICIAL50_RESOURCE).read_text())
    fmt = spec["name_format"]
    return {w: tuple(fmt.format(wnid=w, n=n) for n in ns) for w, ns in spec["files"].items()}


def _read_field(ds, field: str, convert, out: np.ndarray, chunk: int) -> np.ndarray:
    n = len(ds)
    for start in range(0, n, chunk):
        keys = list(range(start, min(n, start + chunk)))
        try:  # batched reads are much faster on ArrayRecord
            records = ds.__getitems__(keys)
        except (AttributeError, TypeError):  # sources without it (tfds.testing.mock_data's)
            records = [ds[k] for k in keys]
        out[start:start + len(keys)] = [convert(r[field]) for r in records]
        if n > 50 * chunk and (start // chunk) % 50 == 0:
            print(f"jaxeq: reading ImageNet {field} {start}/{n}", file=sys.stderr, flush=True)
    return out


def _cached(cache_file, n: int, compute) -> np.ndarray:
    """``compute()`` (an array of length n), saved to / read from ``cache_file`` (.npy)."""
    if cache_file is not None and Path(cache_file).is_file():
        cached = np.load(cache_file)
        if len(cached) == n:
            return cached
    out = compute()
    if cache_file is not None:
        Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{cache_file}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, cache_file)
    return out


def labels_of(ds, *, cache_file: str | os.PathLike | None = None, chunk: int = 1024) -> np.ndarray:
    """Every record's label (int32), read once and cached in ``cache_file`` (.npy) if given.

    With the JPEGs left encoded this parses protobufs only, but it still reads the whole split
    from disk once (the train split is ~140 GB), hence the cache.
    """
    return _cached(cache_file, len(ds), lambda: _read_field(
        ds, "label", int, np.empty(len(ds), np.int32), chunk))


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else str(value)


def file_names_of(ds, *, chunk: int = 1024) -> list[str]:
    """Every record's tfds ``file_name`` (reads the whole split once, as ``labels_of``)."""
    return _read_field(ds, "file_name", _text, np.empty(len(ds), object), chunk).tolist()


def official50_indices(ds, *, cache_file: str | os.PathLike | None = None) -> np.ndarray:
    """Sorted record indices of the official ImageNet-50 files in ``ds`` (the tfds train split),
    cached in ``cache_file`` (.npy) if given; raises ValueError if a listed file is missing."""
    def compute():
        wanted = [f for files in official_50_per_class().values() for f in files]
        return select_files(file_names_of(ds), wanted, what="the official ImageNet-50 list")
    return _cached(cache_file, 50_000, compute)  # the cache file is keyed by data dir and length


def select_files(file_names: Sequence[str], wanted: Sequence[str], *, what: str) -> np.ndarray:
    """Sorted record indices whose file name is in ``wanted``; every wanted name must be there.

    Raises ValueError (one line, naming how many and a few of the missing names) otherwise: a
    list that defines a protocol's training set is not silently replaced by something else.
    """
    wanted = set(wanted)
    keep = np.array([i for i, name in enumerate(file_names) if name in wanted], np.int64)
    found = {file_names[i] for i in keep}
    if len(keep) != len(wanted) or found != wanted:
        missing = sorted(wanted - found)
        dup = len(keep) - len(found)
        detail = (f"{len(missing)} of the {len(wanted)} files of {what} are missing from the "
                  f"data (e.g. {', '.join(missing[:3])})" if missing else
                  f"{dup} file names of {what} occur more than once in the data")
        raise ValueError(f"{detail}; check that the data is the full ILSVRC-2012 train set, or "
                         f"use subset='random' for a seeded random subset instead")
    return np.sort(keep)


def select(labels: np.ndarray, *, per_class: int | None, classes: Sequence[int] | None,
           seed: int) -> np.ndarray:
    """Record indices kept: those whose label is in ``classes`` (all if None), then at most
    ``per_class`` per class by a seeded permutation. Sorted ascending."""
    labels = np.asarray(labels)
    keep = np.arange(len(labels)) if classes is None else np.flatnonzero(np.isin(labels, classes))
    if per_class is None:
        return keep
    g = rng(seed, 5)
    chosen = []
    for c in np.unique(labels[keep]):  # ascending class order: the same draws on every machine
        members = keep[labels[keep] == c]
        chosen.append(members[g.permutation(len(members))[:per_class]])
    return np.sort(np.concatenate(chosen)) if chosen else keep[:0]


def label_cache_file(cache_dir: str | os.PathLike | None, data_dir: str | os.PathLike | None,
                     tfds_split: str, n: int, what: str = "labels") -> Path:
    """Where a split's label (or ``what``) array is cached: keyed by the data dir, split and
    length. ``cache_dir`` defaults to $JAXEQ_CACHE or ~/.cache/jaxeq."""
    if cache_dir is None:
        cache_dir = os.environ.get("JAXEQ_CACHE", Path.home() / ".cache" / "jaxeq")
    where = hashlib.sha1(os.path.abspath(os.fspath(data_dir or "~default")).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{TFDS_NAME}_{tfds_split}_{n}_{where}_{what}.npy"


class ImageNet(Source):
    """imagenet2012 (or a class subset / N-per-class subset of it) as a random-access source.

    Args:
      split: 'train' | 'val' | 'test' (val and test are both ImageNet's validation set).
      seed: drives the N-per-class choice and the training augmentation (per sample and epoch).
      per_class: keep N images per class (E4a: 50, 100, 250, 500; None = all).
      subset: how the N per class are chosen: 'random' (a seeded permutation per class) or
        'official50' (the paper's ImageNet-50 list, ``official_50_per_class``; train split,
        all 1000 classes, per_class 50 or None; a file of the list missing from the data is an
        error, not a silent substitution).
      classes: ImageNet labels to keep, relabelled 0..len-1 in the given order (E3: the 200
        ImageNet-A classes, see ``imagenet_a_200_indices``).
      data_dir: the tfds data dir (default: tfds' default, ~/tensorflow_datasets).
      workdir: if given, the chosen record indices are written there as JSON (and read back
        from there if present, so a run repeats exactly).
      cache_dir: where the per-split label arrays are cached (default $JAXEQ_CACHE or
        ~/.cache/jaxeq).
      augment: random-resized-crop + flip (default: True for 'train' only).
      image_size: training crop size (224). eval_resize / eval_crop: eval geometry
        (256 / 224; E3 uses 288 / 288).
      workers: decoding threads for ``get_batch`` (default: all cores).
    Samples: {"image": uint8 (S, S, 3), "label": int32}.
    """

    def __init__(self, split: str = "train", seed: int = 0, *, per_class: int | None = None,
                 subset: str = "random",
                 classes: Sequence[int] | None = None, data_dir: str | None = None,
                 workdir: str | None = None, cache_dir: str | None = None,
                 augment: bool | None = None, image_size: int = 224, eval_resize: int = 256,
                 eval_crop: int = 224, workers: int | None = None, name: str = "imagenet"):
        self.split = check_split(split, IMAGENET_SPLITS, name)
        self.seed = check_int("seed", seed, 0)
        self.per_class = None if per_class is None else check_int("per_class", per_class, 1)
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
        if subset == "official50":
            if split != "train" or classes is not None or self.per_class not in (None, 50):
                raise ValueError("subset='official50' is the paper's 50-per-class training list: "
                                 "it needs split='train', classes=None and per_class 50 (or None), "
                                 f"got split={split!r}, classes={'set' if classes else None}, "
                                 f"per_class={per_class!r}")
            self.per_class = 50
        self.subset = subset
        self.image_size = check_int("image_size", image_size, 1)
        self.eval_resize = check_int("eval_resize", eval_resize, 1)
        self.eval_crop = check_int("eval_crop", eval_crop, 1)
        if self.eval_crop > self.eval_resize:
            raise ValueError(f"eval_crop ({eval_crop}) must be <= eval_resize ({eval_resize})")
        self.augment = (split == "train") if augment is None else bool(augment)
        self.workers = workers or os.cpu_count() or 1
        tfds_split = TFDS_SPLIT[split]
        self._ds = open_split(tfds_split, data_dir)
        remap = np.arange(1000, dtype=np.int32)
        if classes is not None:
            classes = [int(c) for c in classes]
            if len(set(classes)) != len(classes) or not all(0 <= c < 1000 for c in classes):
                raise ValueError("classes must be distinct ImageNet labels in [0, 1000)")
            remap = np.full(1000, -1, np.int32)
            remap[classes] = np.arange(len(classes), dtype=np.int32)
        self._remap = remap
        self.num_classes = 1000 if classes is None else len(classes)
        if classes is None and self.per_class is None:
            self.indices = np.arange(len(self._ds))
        else:
            tag = "all" if classes is None else f"{len(classes)}cls"
            chosen = "official50" if subset == "official50" else f"{self.per_class or 'all'}pc_seed{self.seed}"
            record = None
            if workdir is not None:
                record = Path(workdir) / f"{name}_{tfds_split}_{tag}_{chosen}_indices.json"
            if record is not None and record.is_file():
                self.indices = np.asarray(json.loads(record.read_text())["indices"], np.int64)
            else:
                if subset == "official50":
                    self.indices = official50_indices(self._ds, cache_file=label_cache_file(
                        cache_dir, data_dir, tfds_split, len(self._ds), "official50_indices"))
                else:
                    labels = labels_of(self._ds, cache_file=label_cache_file(
                        cache_dir, data_dir, tfds_split, len(self._ds)))
                    self.indices = select(labels, per_class=self.per_class, classes=classes,
                                          seed=self.seed)
                if record is not None:
                    record.parent.mkdir(parents=True, exist_ok=True)
                    record.write_text(json.dumps({
                        "tfds": f"{TFDS_NAME}/{tfds_split}", "per_class": self.per_class,
                        "subset": subset, "classes": classes,
                        "seed": None if subset == "official50" else self.seed,
                        "indices": [int(i) for i in self.indices]}))
        self.description = (f"ImageNet {tfds_split} ({len(self.indices)} images, "
                            f"{self.num_classes} classes{', augmented' if self.augment else ''})")
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, i: int, *, epoch: int = 0) -> dict[str, np.ndarray]:
        i = self._index(i)
        record = self._ds[int(self.indices[i])]
        label = self._remap[int(record["label"])]
        if label < 0:
            raise RuntimeError(f"record {self.indices[i]} has a label outside the chosen classes")
        if self.augment:
            image = transforms.train_image(record["image"], rng(self.seed, 7, epoch, i),
                                           size=self.image_size)
        else:
            image = transforms.eval_image(record["image"], resize=self.eval_resize,
                                          crop=self.eval_crop)
        return {"image": image, "label": np.int32(label)}

    def get_batch(self, indices: Sequence[int], *, epoch: int = 0) -> dict[str, np.ndarray]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="jaxeq-decode")
        samples = list(self._pool.map(lambda i: self.get(int(i), epoch=epoch), indices))
        return {"image": np.stack([s["image"] for s in samples]),
                "label": np.array([s["label"] for s in samples], np.int32)}


def imagenet(split: str = "train", seed: int = 0, **kwargs: Any) -> ImageNet:
    """All 1000 classes (E4a); see ``ImageNet`` for the keyword arguments."""
    return ImageNet(split, seed, **kwargs)


def imagenet_a200(split: str = "train", seed: int = 0, **kwargs: Any) -> ImageNet:
    """The 200 ImageNet-A classes with labels 0..199 (E3); E3 evaluates with
    ``eval_resize=288, eval_crop=288``."""
    if "classes" in kwargs:
        raise TypeError("imagenet_a200 fixes classes; use 'imagenet' with classes=... instead")
    return ImageNet(split, seed, classes=imagenet_a_200_indices(), name="imagenet_a200", **kwargs)
