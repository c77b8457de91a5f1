"""Same-process A/B of comparing each layer only on its subgroup's shifts: A compares every
layer's output on all 65 rows (the 64 shifts and the check copy) and discards the shifts that
are not multiples of the layer's stride as NaN (the form before this change); B compares each
stride's outputs on the rows whose shift is a multiple of it (64 shifts on [-4, 4)^2: 16 rows
at stride 2, 4 at stride 4, 1 from stride 8 on, plus the check row). ResNet-18 at 96 px, one
image, 64 roll shifts, eval mode, `jq.layerwise_equivariance`; A and B alternate, 5 rounds each
after a warm-up, medians; the tables must agree to float32 rounding.

    python benchmarks/cpu-2core-2026-12-04/engine_subgroup_ab.py PADDING > engine_subgroup_ab_PADDING.txt
"""
import sys

import layer_table_ab  # this folder's shared A/B runner

from jaxeq.analysis import engine


def every_row(shifts, specs, action, chunk):
    """No selection: every output compared on every row."""
    return {}


if __name__ == "__main__":
    layer_table_ab.run(sys.argv[1], {"A_every_row": every_row,
                                     "B_subgroup_rows": engine._subgroup_rows},
                       attr="_subgroup_rows")
