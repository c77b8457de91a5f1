"""Argument checks shared by the pure functions.

Every public function validates its static arguments here, before anything reaches XLA, so
bad input fails with a message that names the argument and what is allowed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def positive_ints(name: str, value: Any, ndim: int) -> tuple[int, ...]:
    """An int or a length-``ndim`` sequence of ints, each >= 1, as a tuple."""
    values = _int_tuple(name, value, ndim)
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must be >= 1 in every dimension, got {value!r}")
    return values


def _int_tuple(name: str, value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return (int(value),) * ndim
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != ndim:
            raise ValueError(f"{name} must have {ndim} entries (one per spatial dim), got {value!r}")
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            raise TypeError(f"{name} must hold ints, got {value!r}")
        return tuple(int(v) for v in value)
    raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got {value!r}")


def spatial_rank(name: str, x: Any, ndim: int | None = None) -> int:
    """Number of spatial dims of an (N, *spatial, C) array; checks it against ``ndim``."""
    shape = np.shape(x)
    if ndim is None:
        if len(shape) not in (3, 4, 5):
            raise ValueError(
                f"{name} must have shape (N, *spatial, C) with 1, 2 or 3 spatial dims, "
                f"got shape {shape}")
        return len(shape) - 2
    if len(shape) != ndim + 2:
        raise ValueError(
            f"{name} must have shape (N, *spatial, C) with {ndim} spatial dim(s) "
            f"(rank {ndim + 2}), got shape {shape}")
    return ndim


def int_at_least(name: str, value: Any, minimum: int, *, allow_none: bool = False) -> int | None:
    """An int >= ``minimum`` (``None`` passes when ``allow_none``); bools are rejected."""
    if value is None and allow_none:
        return None
    what = f"{'None or ' if allow_none else ''}an int >= {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def int_sequence(name: str, value: Any, minimum: int, *, min_length: int = 1) -> tuple[int, ...]:
    """A sequence of at least ``min_length`` ints, each >= ``minimum``, as a tuple."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) >= min_length \
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                and v >= minimum for v in value)
    if not ok:
        raise ValueError(f"{name} must be a sequence of at least {min_length} int(s) >= {minimum}, "
                         f"got {value!r}")
    return tuple(int(v) for v in value)
