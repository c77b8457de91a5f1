"""Measuring translation equivariance: the vmapped engine (``engine``), layer-by-layer tables
through an explicit model protocol (``layerwise``), classifier shift-robustness metrics
(``consistency``) and the probes behind ``jaxeq probe`` (``probe``, ``probe_render``).

The public functions are re-exported at the top level (``jq.equivariance_error``, ...).
"""
from jaxeq.analysis.consistency import (circular_consistency, crop_consistency,
                                        diagonal_shift_accuracy)
from jaxeq.analysis.engine import (ACTIONS, METRICS, ShiftErrors, assert_equivariant,
                                   assert_invariant, equivariance_error, error_map,
                                   invariance_error, shifted_apply)
from jaxeq.analysis.layerwise import StridedModule, layerwise_equivariance

__all__ = [
    "ACTIONS", "METRICS", "ShiftErrors", "StridedModule", "assert_equivariant",
    "assert_invariant", "circular_consistency", "crop_consistency", "diagonal_shift_accuracy",
    "equivariance_error", "error_map", "invariance_error", "layerwise_equivariance",
    "shifted_apply",
]
