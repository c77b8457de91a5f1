"""Each segment's share of a ResNet-18's Lie derivative of translation (random init, eval mode,
1000 classes, 2 band-limited 64 px images) for zeros / circular / reflect fill: the numbers in
README.md ("The equivariance microscope").

python docs/examples/lie_attribution_resnet18.py
"""
import jax
import numpy as np

import jaxeq as jq
from jaxeq import models
from jaxeq.bench.lie_derivative import smooth_images

x = smooth_images(jax.random.key(0), 2, 64, 8)           # band-limited, |k| <= 8
out = {}
for fill in ("zeros", "circular", "reflect"):
    model = models.get("resnet18", padding="same", fill=fill)
    variables = jax.jit(model.init)(jax.random.key(0), x[:1])
    rows = jq.lie_attribution(model, variables, x)
    out[fill] = rows
names = [r["path"] for r in out["zeros"]]
print("| boundary | " + " | ".join(f"{f} share" for f in out) + " |")
print("|---|" + "---|" * len(out))
for i, name in enumerate(names):
    cells = []
    for f in out:
        r = out[f][i]
        cells.append(f"{np.mean(r['norm']):.4f}" if name == "(total)" else f"{r['share']:.3f}")
    print(f"| {name} | " + " | ".join(cells) + " |")
