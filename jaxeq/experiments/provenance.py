"""Where a results file came from: the command line, the jaxeq source revision and the versions
of the packages that computed it, recorded by the run itself into ``results.json``."""
from __future__ import annotations

import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("jaxeq", "jax", "jaxlib", "flax", "optax", "numpy", "orbax-checkpoint", "ml-collections")


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (``jaxeq run ...``), shell-quoted."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("jaxeq", "__main__.py"):
        argv[0] = "jaxeq"
    return shlex.join(argv)


def source_revision() -> dict:
    """``{"commit": sha, "dirty": bool}`` of the git checkout jaxeq is imported from, or
    ``{"commit": None}`` for an installed wheel (its version is in :func:`versions`)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "jaxeq"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    # 'dirty': the package's own sources differ from the commit (results may not reproduce from it)
    return {"commit": sha, "dirty": bool(status.strip())}


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(argv: list[str] | None = None) -> dict:
    return {"command": command_line(argv), "source": source_revision(), "versions": versions()}
