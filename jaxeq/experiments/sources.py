"""Data sources of a cell: the config's data set with per-split kwargs.

Some data sets take extra kwargs from the cell itself (ImageNet subsets record their chosen
image indices in the cell's folder, so a resumed cell trains on the same images). Such wiring is
registered here by data set name (:func:`register_cell_kwargs`); the runner names no data set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

# data name -> fn(kwargs of one split, cell folder) -> kwargs to use
_CELL_KWARGS: dict[str, Callable[[dict, Path], dict]] = {}


def register_cell_kwargs(*data_names: str):
    """Decorator: ``fn(kwargs, cell_dir) -> kwargs`` completes the kwargs of ``data_names``."""
    def wrap(fn):
        for name in data_names:
            _CELL_KWARGS[name] = fn
        return fn
    return wrap


@register_cell_kwargs("imagenet", "imagenet_a200")
def _imagenet_subset_record(kwargs: dict, cell_dir: Path) -> dict:
    """A per-class subset writes its chosen record indices into the cell folder."""
    if "per_class" in kwargs:
        kwargs.setdefault("workdir", str(cell_dir))
    return kwargs


def data_seed(cfg) -> int:
    from jaxeq.train.config import data_seed as seed_of
    return seed_of(cfg)


def split_source(cfg, split: str, extra: Mapping | None = None, cell_dir: Path | None = None):
    """The source of ``split``: ``cfg.data.kwargs`` updated with ``extra`` (and the cell's own
    kwargs when ``cell_dir`` is given)."""
    from jaxeq import data

    kw = dict(cfg.data.kwargs)
    kw.update(dict(extra) if extra is not None else {})
    if cell_dir is not None and cfg.data.name in _CELL_KWARGS:
        kw = _CELL_KWARGS[cfg.data.name](kw, Path(cell_dir))
    return data.get(cfg.data.name, split=split, seed=data_seed(cfg), **kw)


def cell_sources(cfg, split_kwargs: Mapping, cell_dir: Path) -> dict | None:
    """Data sources with per-split kwargs (None when every split uses ``data.kwargs``)."""
    if not split_kwargs:
        return None
    d = cfg.data
    splits = [d.train_split] + ([d.val_split] if d.val_split else []) + list(d.test_splits)
    return {s: split_source(cfg, s, split_kwargs.get(s, {}), cell_dir) for s in dict.fromkeys(splits)}
