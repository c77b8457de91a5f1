"""XLA flags the ``jaxeq`` command sets before JAX starts, chosen by measurement.

``import jaxeq`` never touches the environment: a library must not change how its host program's
XLA behaves. The command line (``jaxeq run``, ``reproduce``, ``probe``, ``bench``) owns its
process, so it sets these. A flag the user already put in ``XLA_FLAGS`` wins over ours;
``JAXEQ_NO_XLA_DEFAULTS=1`` turns ours off.

Chosen by measurement (BENCHMARKS.md, "XLA flags"): on the CPU backend XLA's YNNPACK fusion
ran convolutions and their weight gradients slower than XLA's Eigen convolutions in jaxeq's
train steps, so it is switched off. The flag is read only by the CPU backend; GPU and TPU runs
ignore it.
"""
from __future__ import annotations

import os

from jaxeq.xla_options import CPU_OPTIONS

# the same options jaxeq's own programs compile with (jaxeq.xla_options), as XLA_FLAGS entries
CPU_XLA_FLAGS: tuple[str, ...] = tuple(f"--{k}={v}" for k, v in CPU_OPTIONS.items())


def merge_flags(current: str, ours) -> str:
    """Append ``ours`` to ``current`` unless the user already set the same flag name."""
    have = {f.split("=", 1)[0] for f in current.split()}
    extra = [f for f in ours if f.split("=", 1)[0] not in have]
    return " ".join(current.split() + extra)


def backend_started() -> bool:
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()


def apply_defaults(extra=()) -> str:
    """Put our CPU flags (plus ``extra``) into ``XLA_FLAGS``; returns the resulting value.

    Raises RuntimeError if a JAX backend already runs in this process (flags would be ignored).
    """
    if os.environ.get("JAXEQ_NO_XLA_DEFAULTS") == "1":
        ours = tuple(extra)
    else:
        ours = CPU_XLA_FLAGS + tuple(extra)
    if ours and backend_started():
        raise RuntimeError("XLA_FLAGS must be set before JAX initialises its backend; a backend "
                           "is already running in this process")
    os.environ["XLA_FLAGS"] = merge_flags(os.environ.get("XLA_FLAGS", ""), ours)
    return os.environ["XLA_FLAGS"]


def enable_compilation_cache(directory) -> str | None:
    """Keep compiled programs in ``directory`` (JAX's persistent cache), for the CLI's runs.

    An experiment trains the same network for several seeds: from the second seed on the train
    and eval steps load from the cache instead of compiling again. Every program is kept (the
    default keeps only those that took > 1 s to compile). A cache the user configured wins.
    Returns the directory in use, or None when JAX refuses (then everything compiles as usual).
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    try:
        os.makedirs(directory, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except (AttributeError, OSError, ValueError):
        return None
    return str(directory)
