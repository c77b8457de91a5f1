"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the new one,
never a half-written one. The temporary file sits beside the target (same filesystem, so the
final ``os.replace`` is a rename) and is removed if writing it fails."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through ``path.tmp`` + rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj, **dump_kwargs) -> None:
    """``json.dumps(obj, **dump_kwargs)`` written atomically (:func:`write_text`)."""
    write_text(path, json.dumps(obj, **dump_kwargs))
