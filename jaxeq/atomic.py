"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the new one,
never a half-written one. The temporary file sits beside the target (same filesystem, so the
final ``os.replace`` is a rename) and is removed if writing it fails."""
from __future__ import annotations

import json
import os
from pathlib import Path


def _write_via_tmp(path: str | os.PathLike, write, mode: str) -> None:
    """``write(f)`` into ``path.tmp`` (opened with ``mode``), then rename it onto ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through ``path.tmp`` + rename."""
    _write_via_tmp(path, lambda f: f.write(text), "w")


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> None:
    """``fig.savefig`` written atomically; the format comes from ``path``'s suffix."""
    fmt = Path(path).suffix.lstrip(".") or None
    _write_via_tmp(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs), "wb")


def write_json(path: str | os.PathLike, obj, **dump_kwargs) -> None:
    """``json.dumps(obj, **dump_kwargs)`` written atomically (:func:`write_text`)."""
    write_text(path, json.dumps(obj, **dump_kwargs))
