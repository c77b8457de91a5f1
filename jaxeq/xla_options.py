"""XLA compile options for jaxeq's own jitted programs, applied per compile.

``import jaxeq`` never touches ``XLA_FLAGS``: a library must not change how its host program's
XLA behaves. Yet the options below were chosen by measurement (BENCHMARKS.md, "XLA flags") and
matter: on the CPU backend XLA's YNNPACK fusion runs jaxeq's convolutions and their gradients
slower than XLA's own. So jaxeq passes them to the programs it compiles itself (the analysis
engine, worst-case and Lie programs, the train and eval steps), through ``jax.jit``'s
``compiler_options``: a library user calling ``jq.invariance_error`` from a notebook or pytest
gets what the ``jaxeq`` command gets, and the user's own programs keep XLA's defaults.

Precedence: an option the user set in ``XLA_FLAGS`` wins (it is left out here);
``JAXEQ_NO_XLA_DEFAULTS=1`` turns all of them off; other backends than CPU get none.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

# option name (as in XLA_FLAGS, without the leading --) -> value, for the CPU backend
CPU_OPTIONS: dict[str, str] = {"xla_cpu_experimental_ynn_fusion_type": ""}


def user_flag_names(xla_flags: str | None = None) -> set[str]:
    """The option names set in ``XLA_FLAGS`` (or in ``xla_flags``)."""
    text = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
    return {f.split("=", 1)[0].lstrip("-") for f in text.split()}


def compiler_options(backend: str | None = None) -> dict[str, str] | None:
    """The options jaxeq's programs compile with on ``backend`` (default: JAX's default
    backend), or None for none."""
    if os.environ.get("JAXEQ_NO_XLA_DEFAULTS") == "1":
        return None
    if backend is None:
        import jax
        backend = jax.default_backend()
    if backend != "cpu":
        return None
    taken = user_flag_names()
    return {k: v for k, v in CPU_OPTIONS.items() if k not in taken} or None


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` compiled with :func:`compiler_options` (read when called).

    JAX takes compile options only for a top-level program: called inside another trace (an
    outer ``jax.jit``, ``vmap``, ``eval_shape``), the same function runs as a plain
    ``jax.jit`` and is compiled with its caller's options.
    """
    import jax

    options = compiler_options()
    if options is None:
        return jax.jit(fn, **kwargs)
    top, nested = jax.jit(fn, compiler_options=options, **kwargs), jax.jit(fn, **kwargs)

    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> Any:
        # JAX refuses compile options inside an outer trace (jit, eval_shape) with a ValueError
        # that names them, before anything runs; there the plain jit serves. (Under vmap or grad
        # alone the program is still compiled on its own, with the options.)
        try:
            return top(*args, **kw)
        except ValueError as err:
            if "compiler_options" not in str(err):
                raise
            return nested(*args, **kw)

    call.lower = top.lower
    return call
