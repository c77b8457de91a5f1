"""What the CPU convolution fast path buys in a ResNet train step, and what XLA:CPU compiles it to.

    python benchmarks/cpu-2core-2026-12-05/conv_relayout_ab.py resnet18 same 32 [rounds]

Variants, each compiled in one process and timed alternately (each round runs all three, the
order rotating; the machine drifts, the ratios hold); medians with each variant's min-max:
  relayout  the fast path (jaxeq.kernels.conv_relayout): x . eye per block of samples
  plain     no conv fast path: XLA:CPU's own weight-gradient relayout
  barrier   the fast path behind a first GEMM eye . x, whose operand is x as it is and whose
            result is a fresh buffer, so no producer of x can fuse into the copies after it

Also prints, for the relayout variant's compiled step, how many identity GEMMs get an operand
copy from XLA (its dot wants the contracted axis minor) and how many of those copies recompute
x's producer (BatchNorm, ReLU, residual add) instead of reading x.
"""
import os
import re
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax import lax  # noqa: E402

import jaxeq.kernels as K  # noqa: E402
import jaxeq.kernels.conv_relayout as CR  # noqa: E402
from jaxeq.bench import model_steps as ms  # noqa: E402
from jaxeq.bench.harness import time_alternating  # noqa: E402

name, padding, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 6
fast_conv = K._FAST_PATHS[("conv", "cpu")]
batch_to_last = CR.batch_to_last


def behind_barrier(x, b):
    n = x.shape[0]
    fresh = lax.dot_general(jnp.eye(b, dtype=x.dtype), x.reshape(n // b, b, -1),
                            (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST)
    return batch_to_last(jnp.moveaxis(fresh, 0, 1).reshape(x.shape), b)


def identity_gemm_operands(hlo: str) -> tuple[int, int]:
    """(identity GEMMs whose operand is a fusion, those whose fusion reads > 1 array)."""
    fusions = {m[1]: m[2].count("%") for m in re.finditer(
        r"^\s+%(\S+) = \S+ fusion\(([^)]*)\)", hlo, re.M)}
    dots = re.findall(r"^\s+%\S+ = \S+ dot\(%(\S+), %compare_convert_fusion\S*\)", hlo, re.M)
    fused = [d for d in dots if d in fusions]
    return len(fused), sum(fusions[d] > 1 for d in fused)


model, variables, _, x, y = ms.setup(name, padding, batch, 112, "cpu")
tx = optax.sgd(0.01, momentum=0.9)
state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
x, y = jnp.asarray(x), jnp.asarray(y)
steps, results = {}, {}
for variant in ("relayout", "plain", "barrier"):
    K._FAST_PATHS.pop(("conv", "cpu"), None)
    if variant != "plain":
        K._FAST_PATHS[("conv", "cpu")] = fast_conv
    CR.batch_to_last = behind_barrier if variant == "barrier" else batch_to_last
    steps[variant] = jax.jit(ms.make_train_step(model, tx)).lower(state, x, y).compile()
    results[variant] = jax.block_until_ready(steps[variant](state, x, y))
    if variant == "relayout":
        copied, recomputing = identity_gemm_operands(steps[variant].as_text())
        print(f"{name} {padding} b{batch}: {copied} identity GEMMs get an operand copy, "
              f"{recomputing} of those copies recompute x's producer")
K._FAST_PATHS[("conv", "cpu")] = fast_conv
CR.batch_to_last = batch_to_last
for variant in ("plain", "barrier"):
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(results["relayout"]),
                                                     jax.tree.leaves(results[variant])))
    print(f"  {variant}: step outputs bitwise equal to relayout's: {same}")
times = time_alternating({v: (lambda f=f: jax.block_until_ready(f(state, x, y)))
                          for v, f in steps.items()}, repeats=rounds, warmup=1)
med = {v: float(np.median(t)) for v, t in times.items()}
print("  medians (min-max): " + ", ".join(
    f"{v} {1e3 * m:.1f} ({1e3 * min(times[v]):.0f}-{1e3 * max(times[v]):.0f}) ms"
    for v, m in med.items())
    + f"; relayout vs plain x{med['plain'] / med['relayout']:.2f}, barrier vs relayout "
    f"x{med['relayout'] / med['barrier']:.2f}; rounds {rounds}")
