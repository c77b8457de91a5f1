"""The paper's experiment configs, shipped with the package: ``jaxeq run NAME[:variant]``.

One module per experiment (``get_config(variant) -> ConfigDict``, a runnable command in its
docstring); :mod:`.recipes` holds the blocks they share.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from jaxeq._checks import choice

NAMES = ("rook", "red_green", "quadrant", "shift_robustness", "data_efficiency",
         "patch_matching", "action_recognition")


def names() -> tuple[str, ...]:
    """The packaged experiment names."""
    return NAMES


def path(name: str) -> Path:
    """The file of the packaged config ``name``."""
    choice("experiment name", name, NAMES)
    return Path(str(resources.files(__name__).joinpath(f"{name}.py")))
