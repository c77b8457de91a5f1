"""Measuring translation equivariance: the vmapped engine (``engine``, its group actions in
``actions``), layer-by-layer tables through an explicit model protocol (``layerwise``),
classifier shift-robustness metrics (``consistency``, worst case over a shift grid in
``worst_case``), sub-pixel shifts and EQ-T in dB (``fractional``), the Lie derivative and its
layer attribution (``lie``), per-layer padding diagnostics (``padding_report``), position
information readouts (``position``) and the probes behind ``jaxeq probe`` (``probe``,
``probe_render``).

The public functions are re-exported at the top level (``jq.equivariance_error``, ...).
"""
from jaxeq.analysis.consistency import (circular_consistency, crop_consistency,
                                        diagonal_shift_accuracy)
from jaxeq.analysis.engine import (ACTIONS, METRICS, ShiftErrors, assert_equivariant,
                                   assert_invariant, equivariance_error, error_map,
                                   invariance_error, shifted_apply)
from jaxeq.analysis.layerwise import StridedModule, layerwise_equivariance
from jaxeq.analysis.worst_case import WorstCase, shift_map, worst_case_shifts
from jaxeq.analysis.padding_report import LayerPads, bias_maps, even_sizes, layer_pads
from jaxeq.analysis.fractional import eq_t_db, eq_t_shifts
from jaxeq.analysis.lie import LieDerivative, lie_attribution, lie_derivative, lie_derivative_fd

__all__ = [
    "ACTIONS", "METRICS", "ShiftErrors", "StridedModule", "assert_equivariant",
    "assert_invariant", "circular_consistency", "crop_consistency", "diagonal_shift_accuracy",
    "equivariance_error", "error_map", "invariance_error", "layerwise_equivariance",
    "shifted_apply",
]
__all__ += [
    "LayerPads", "LieDerivative", "WorstCase", "bias_maps", "eq_t_db", "eq_t_shifts",
    "even_sizes", "layer_pads", "lie_attribution", "lie_derivative", "lie_derivative_fd",
    "shift_map", "worst_case_shifts",
]
