"""A user's own folder of images.

Layouts: ``root/<class>/<image>`` (classes = sorted subfolder names; train/val/test drawn per
class by a seeded permutation), or ``root/{train,val,test}/<class>/<image>`` (the folders are
the splits). Files that are not readable images are skipped with a warning that counts them.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from jaxeq.data import transforms
from jaxeq.data._common import Source, check_int, check_split, rng

FOLDER_SPLITS = ("train", "val", "test")


def list_images(root: str | os.PathLike, *, decode: bool = False) -> list[Path]:
    """All readable images under ``root`` (recursive, sorted). Unreadable or non-image files
    are skipped and counted in a warning. ``decode=True`` fully decodes each file (catches
    truncated images too); otherwise only the header is checked (``Image.verify``)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    good, bad = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            with Image.open(path) as img:
                img.load() if decode else img.verify()
            good.append(path)
        except Exception:  # Pillow raises many types for bad files
            bad.append(path)
    if bad:
        shown = ", ".join(str(p.relative_to(root)) for p in bad[:5])
        warnings.warn(f"skipped {len(bad)} of {len(good) + len(bad)} files under {str(root)!r} that "
                      f"are not readable images ({shown}{', ...' if len(bad) > 5 else ''})",
                      stacklevel=2)
    if not good:
        raise ValueError(f"image folder {str(root)!r} holds no readable images")
    return good


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), np.uint8)


class Folder(Source):
    """A classification data set from a folder (see the module docstring).

    Args: split, seed (split draw and augmentation), val_fraction / test_fraction (per class,
    when the folder has no split subfolders), augment (default: train only), image_size (224),
    eval_resize (256), workers (decoding threads).
    Samples: {"image": uint8 (image_size, image_size, 3), "label": int32}.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", seed: int = 0, *,
                 val_fraction: float = 0.1, test_fraction: float = 0.1,
                 augment: bool | None = None, image_size: int = 224, eval_resize: int = 256,
                 workers: int | None = None):
        check_split(split, FOLDER_SPLITS, "folder")
        self.seed = check_int("seed", seed, 0)
        self.image_size = check_int("image_size", image_size, 1)
        self.eval_resize = check_int("eval_resize", eval_resize, image_size)
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) with sum < 1, "
                             f"got {val_fraction}, {test_fraction}")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
        presplit = all((root / s).is_dir() for s in ("train", "val"))
        base = root / split if presplit else root
        if presplit and not base.is_dir():
            raise FileNotFoundError(f"{str(base)!r} does not exist (the folder has split subfolders)")
        paths = list_images(base)
        class_names = sorted({p.relative_to(base).parts[0] for p in paths if len(p.relative_to(base).parts) > 1})
        if presplit:
            class_names = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        if not class_names:
            raise ValueError(f"{str(base)!r} must hold one subfolder per class (root/<class>/<image>)")
        index = {c: k for k, c in enumerate(class_names)}
        paths = [p for p in paths if len(p.relative_to(base).parts) > 1
                 and p.relative_to(base).parts[0] in index]
        labels = np.array([index[p.relative_to(base).parts[0]] for p in paths], np.int32)
        if not presplit:
            keep = []
            g = rng(self.seed, 31)
            for c in range(len(class_names)):
                members = np.flatnonzero(labels == c)
                members = members[g.permutation(len(members))]
                n_val = int(round(val_fraction * len(members)))
                n_test = int(round(test_fraction * len(members)))
                part = {"val": members[:n_val], "test": members[n_val:n_val + n_test],
                        "train": members[n_val + n_test:]}[split]
                keep.extend(part.tolist())
            keep = sorted(keep)
            paths, labels = [paths[k] for k in keep], labels[keep]
        if not paths:
            raise ValueError(f"split {split!r} of {str(root)!r} is empty")
        self.paths, self.labels = paths, labels
        self.class_names = class_names
        self.num_classes = len(class_names)
        self.augment = (split == "train") if augment is None else bool(augment)
        self.workers = workers or os.cpu_count() or 1
        self._pool: ThreadPoolExecutor | None = None
        self.description = f"folder {str(root)!r} ({split}: {len(paths)} images, {self.num_classes} classes)"

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, i: int, *, epoch: int = 0) -> dict[str, np.ndarray]:
        i = self._index(i)
        if self.augment:
            image = transforms.train_image(self.paths[i], rng(self.seed, 7, epoch, i),
                                           size=self.image_size)
        else:
            image = transforms.eval_image(self.paths[i], resize=self.eval_resize,
                                          crop=self.image_size)
        return {"image": image, "label": self.labels[i]}

    def get_batch(self, indices: Sequence[int], *, epoch: int = 0) -> dict[str, np.ndarray]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="jaxeq-decode")
        samples = list(self._pool.map(lambda i: self.get(int(i), epoch=epoch), indices))
        return {"image": np.stack([s["image"] for s in samples]),
                "label": np.array([s["label"] for s in samples], np.int32)}


def folder(split: str = "train", seed: int = 0, *, root: str | os.PathLike | None = None,
           **kwargs: Any) -> Folder:
    """Registry entry: ``get("folder", split=..., root=DIR)``."""
    if root is None:
        raise ValueError("data set 'folder' needs root=<path to the image folder>")
    return Folder(root, split, seed, **kwargs)
