"""Function composition for building nets out of pure functions."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def chain(*fns: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Compose array -> array functions left to right: ``chain(f, g)(x) == g(f(x))``.

    The result keeps the functions in ``.fns`` so analysis tools can walk the layers.
    """
    for i, f in enumerate(fns):
        if not callable(f):
            raise TypeError(f"chain: argument {i} must be callable, got {type(f).__name__}")

    def chained(x):
        for f in fns:
            x = f(x)
        return x

    chained.fns = tuple(fns)
    return chained
