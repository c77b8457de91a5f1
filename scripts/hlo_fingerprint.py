"""Print SHA-256 prefixes of compiled ResNet-18 (same and full) float32 train steps' HLO.

A refactor that claims "no speed change" must leave these hashes unchanged:
    python scripts/hlo_fingerprint.py          # same/plain, same/trainer, full/plain, full/trainer
"plain": a minimal SGD step written here (model + conv/pool/BatchNorm kernels only).
"trainer": the trainer's own step (jaxeq.train.steps.make_train_step, jitted as fit jits it,
one device), so changes to the training code are covered too. Batch 16x64x64x3.
"""
from __future__ import annotations

import hashlib
import re
import sys

import jax
import jax.numpy as jnp
import optax

import jaxeq.models as models


BATCH = 16  # >= 8, so the CPU conv fast path (jaxeq.kernels) is in the program
_SOURCE_TABLES = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")


def _hash(text: str) -> str:
    """Hash of the program alone: op metadata and the source-location tables (file names, line
    numbers, stack frames) move with any edit or checkout path and say nothing about the math."""
    kept, skipping = [], False
    for line in re.sub(r", metadata=\{[^}]*\}", "", text).splitlines():
        if line in _SOURCE_TABLES:
            skipping = True
        elif skipping and not line.strip():
            skipping = False
        elif not skipping:
            kept.append(line)
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()[:16]


def trainer_step_hlo(padding: str) -> str:
    from jaxeq.train import steps, state as train_state
    model = models.get("resnet18", padding=padding, num_classes=10)
    batch = {"image": jnp.zeros((BATCH, 64, 64, 3), jnp.uint8), "label": jnp.zeros((BATCH,), jnp.int32),
             "mask": jnp.ones((BATCH,), jnp.bool_)}
    variables = model.init(jax.random.key(0), jnp.zeros((BATCH, 64, 64, 3), jnp.float32), train=False)
    tx = optax.sgd(1.0, momentum=0.9)
    st = train_state.create(variables, tx, jax.random.key_data(jax.random.key(0)))
    step = steps.make_train_step(model, tx, lambda s: 0.1, update_batch_stats=True, train_mode=True)
    return jax.jit(step, donate_argnums=0).lower(st, batch).compile().as_text()


def step_hlo(padding: str) -> str:
    model = models.get("resnet18", padding=padding, num_classes=10)
    x = jnp.zeros((BATCH, 64, 64, 3), jnp.float32)
    y = jnp.zeros((BATCH,), jnp.int32)
    variables = model.init(jax.random.key(0), x, train=False)
    params, stats = variables["params"], variables["batch_stats"]
    tx = optax.sgd(0.1, momentum=0.9)
    opt = tx.init(params)

    def loss_fn(p, s):
        logits, new = model.apply({"params": p, "batch_stats": s}, x, train=True,
                                  mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, new["batch_stats"]

    def step(p, s, o):
        (loss, s2), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s)
        upd, o2 = tx.update(g, o, p)
        return optax.apply_updates(p, upd), s2, o2, loss

    return jax.jit(step).lower(params, stats, opt).compile().as_text()


if __name__ == "__main__":
    for padding in sys.argv[1:] or ("same", "full"):
        print(f"{padding}/plain: {_hash(step_hlo(padding))}")
        print(f"{padding}/trainer: {_hash(trainer_step_hlo(padding))}")
