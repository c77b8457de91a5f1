"""Nets built from pure functions: ``chain(f, g, ...)`` composes them left to right and keeps
each one as a named :class:`Layer` with its declared stride, so analysis tools can walk the
layers (``jq.layerwise_equivariance``) without guessing.

A chain element declares its stride (relative to its own input) in one of these ways, first
match wins:

1. it is a :func:`layer` (``jq.layer(fn, stride=2, name="pool1")``) or any object with a
   ``stride`` attribute that is not None;
2. it is a ``functools.partial`` with a ``stride`` keyword that is not None
   (``partial(jq.conv, kernel=w, stride=2)``);
3. it is a ``functools.partial`` of one of jaxeq's strided ops (``conv``, ``max_pool``,
   ``avg_pool``, ``blur_pool``, ``aps_pool``) without a ``stride`` keyword: that op's own
   default applies (:data:`DEFAULT_STRIDES`; for ``max_pool``/``avg_pool`` the ``window``
   keyword, as those functions do).

Anything else declares no stride (``Layer.stride is None``); the analysis then assumes 1 and
says so when the layer changes the spatial size.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from jaxeq.conv import conv
from jaxeq.pool import aps_pool, avg_pool, blur_pool, max_pool

__all__ = ["DEFAULT_STRIDES", "Chain", "Layer", "chain", "layer"]

# The stride each jaxeq op uses when its ``stride`` argument is left out: an int, or the name
# of the keyword it defaults to (the pools' ``window``). Checked against the signatures by the
# tests, so it cannot drift from the functions.
DEFAULT_STRIDES: dict[Callable, int | str] = {
    conv: 1, max_pool: "window", avg_pool: "window", blur_pool: 2, aps_pool: 2,
}


@dataclasses.dataclass(frozen=True)
class Layer:
    """One chain element: ``fn`` (array -> array), its ``stride`` relative to its input (an int,
    one int per spatial dim, or None when undeclared) and a display ``name``."""
    fn: Callable[[Any], Any]
    stride: Any = None
    name: str = ""

    def __call__(self, x):
        return self.fn(x)


def _fn_name(fn) -> str:
    base = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(base, "__name__", type(base).__name__)


def _declared_stride(fn) -> Any:
    """The stride ``fn`` declares by the rules in the module docstring, or None."""
    if getattr(fn, "stride", None) is not None:
        return fn.stride
    if not isinstance(fn, functools.partial):
        return None
    if fn.keywords.get("stride") is not None:
        return fn.keywords["stride"]
    default = DEFAULT_STRIDES.get(fn.func)
    if isinstance(default, str):
        return fn.keywords.get(default)
    return default


def layer(fn: Callable[[Any], Any], *, stride: Any = None, name: str | None = None) -> Layer:
    """A chain element with an explicit ``stride`` (int or one per spatial dim; None: read it
    from ``fn`` by the rules in the module docstring) and ``name`` (default: the function's)."""
    if not callable(fn):
        raise TypeError(f"layer: fn must be callable, got {type(fn).__name__}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"layer: name must be a str or None, got {name!r}")
    return Layer(fn, _declared_stride(fn) if stride is None else stride, name or _fn_name(fn))


class Chain:
    """Functions composed left to right: ``Chain(layers)(x) == layers[-1](...layers[0](x))``.

    ``layers`` holds each element as a :class:`Layer`; ``fns`` the functions alone.
    """

    def __init__(self, layers: tuple[Layer, ...]):
        self.layers = tuple(layers)

    @property
    def fns(self) -> tuple[Callable[[Any], Any], ...]:
        return tuple(el.fn for el in self.layers)

    def __call__(self, x):
        for el in self.layers:
            x = el.fn(x)
        return x

    def __repr__(self) -> str:
        return f"Chain({', '.join(el.name for el in self.layers)})"


def chain(*fns: Callable[[Any], Any]) -> Chain:
    """Compose array -> array functions left to right: ``chain(f, g)(x) == g(f(x))``.

    Each argument is a plain function or a :func:`layer`; the result is a :class:`Chain` that
    records every element's name and declared stride (rules in the module docstring).
    """
    for i, f in enumerate(fns):
        if not callable(f):
            raise TypeError(f"chain: argument {i} must be callable, got {type(f).__name__}")
    return Chain(tuple(f if isinstance(f, Layer) else layer(f) for f in fns))
