"""jaxeq: translation equivariance of CNNs in JAX (Kayhan & van Gemert, CVPR 2020).

Importing jaxeq never changes XLA flags or global JAX configuration.
"""
from jaxeq.analysis import (assert_equivariant, assert_invariant, circular_consistency,
                            crop_consistency, diagonal_shift_accuracy, equivariance_error,
                            error_map, invariance_error, layerwise_equivariance)
from jaxeq.compose import chain, layer
from jaxeq.conv import conv, output_size
from jaxeq.padding import FILLS, PADDINGS, effective_kernel, pad, padding_pairs
from jaxeq.pool import (aps_pool, avg_pool, binomial_filter, blur_pool, global_avg_pool,
                        global_max_pool, max_pool, polyphase_components)
from jaxeq.shifts import crop, fractional_shift, roll, shift_grid, translate
from jaxeq.analysis import (eq_t_db, eq_t_shifts, layer_pads, lie_attribution, lie_derivative,
                            lie_derivative_fd, worst_case_shifts)

__version__ = "0.1.0"

__all__ = [
    "assert_equivariant", "assert_invariant", "circular_consistency", "crop_consistency",
    "diagonal_shift_accuracy", "equivariance_error", "error_map", "invariance_error",
    "layerwise_equivariance",
    "FILLS", "PADDINGS", "aps_pool", "avg_pool", "binomial_filter", "blur_pool", "chain",
    "conv", "crop", "effective_kernel", "global_avg_pool", "global_max_pool", "layer", "max_pool",
    "output_size", "pad", "padding_pairs", "polyphase_components", "roll", "shift_grid",
    "translate",
]
__all__ += [  # the equivariance microscope (jaxeq.analysis)
    "eq_t_db", "eq_t_shifts", "fractional_shift", "layer_pads", "lie_attribution",
    "lie_derivative", "lie_derivative_fd", "worst_case_shifts",
]
