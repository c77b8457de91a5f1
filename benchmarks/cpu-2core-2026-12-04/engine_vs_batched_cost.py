"""XLA's cost analysis of the engine's compiled program against the bench's batched forward
(ResNet-18, one 64 px image, 16 translations): how much more the engine asks of the device.

    python benchmarks/cpu-2core-2026-12-04/engine_vs_batched_cost.py > engine_vs_batched_cost.txt
"""
import jax
import jax.numpy as jnp

import jaxeq as jq
from jaxeq.analysis import engine
from jaxeq.bench.invariance_sweep import _shifts
from jaxeq.bench.model_steps import setup

for padding in ("same", "full"):
    model, variables, _, xn, _ = setup("resnet18", padding, 1, 64, "cpu")
    x, js = jax.device_put(xn), jax.device_put(_shifts(16))
    f = jax.jit(lambda v: model.apply(variables, v, train=False))
    chunk = max(1, engine.default_memory_budget() // engine._per_image_bytes(("single", f), x))
    ours = engine._single_output_program(f, "invariant", "translate", None, chunk, False, True,
                                         False)  # the grid holds the zero shift: no check copy
    xs = jax.vmap(lambda s: jq.translate(x, s)[0])(js)
    batched = jax.jit(lambda xs, x: jnp.sqrt(jnp.sum(jnp.square(f(xs) - f(x)), -1))
                      / jnp.linalg.norm(f(x)))
    for name, compiled in (("engine", ours.lower(x, js, None).compile()),
                           ("batched forward", batched.lower(xs, x).compile())):
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        hlo = compiled.as_text()
        print(f"{padding:4} {name:15} GFLOP {cost['flops'] / 1e9:6.2f}  MB accessed "
              f"{cost['bytes accessed'] / 1e6:5.0f}  convolutions {hlo.count(' convolution(')}  "
              f"fusions {hlo.count('fusion(')}")
