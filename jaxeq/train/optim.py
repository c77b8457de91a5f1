"""Optimizers as PyTorch defines them, built from optax pieces, and head-only masking.

The learning rate is NOT inside the optax chain: every transformation here produces the
direction that PyTorch multiplies by ``lr`` last (``p -= lr * d``), and the train step applies
``-lr`` itself. That keeps the learning rate a plain value in the train state (schedules and
reduce-on-plateau change it without touching the optimizer state or recompiling) and matches
PyTorch exactly, because in all three optimizers lr scales only the final update:

- SGD: ``g += wd * p; buf = momentum * buf + g`` (``buf = g`` on the first step, which optax's
  zero-initialised trace reproduces); Nesterov: ``d = g + momentum * buf``; else ``d = buf``.
- Adadelta: ``g += wd * p``, then the running averages of g**2 and of the (lr-free) update.
- Adam: ``g += wd * p`` (L2, not AdamW's decoupled decay), then bias-corrected moments,
  ``d = m_hat / (sqrt(v_hat) + eps)``.
"""
from __future__ import annotations

import jax
import optax


def direction(opt) -> optax.GradientTransformation:
    """The lr-free update direction of ``opt`` (the ``config.optimizer`` section)."""
    decay = [optax.add_decayed_weights(opt.weight_decay)] if opt.weight_decay else []
    if opt.name == "sgd":
        core = [optax.trace(decay=opt.momentum, nesterov=opt.nesterov)] if opt.momentum else []
    elif opt.name == "adadelta":
        core = [optax.scale_by_adadelta(rho=opt.rho, eps=opt.eps)]
    elif opt.name == "adam":
        core = [optax.scale_by_adam(b1=opt.b1, b2=opt.b2, eps=opt.eps)]
    else:
        raise ValueError(f"optimizer.name={opt.name!r} is not one of ['sgd', 'adadelta', 'adam']")
    return optax.chain(*decay, *core)


def trainable_labels(params, trainable: str):
    """'train' / 'freeze' label per parameter leaf: 'head' trains only the top-level 'head'."""
    if trainable == "all":
        return jax.tree.map(lambda _: "train", params)
    if trainable == "head":
        if "head" not in params:
            raise ValueError("trainable='head' needs a top-level parameter collection named "
                             f"'head' (the classifier); the model has {sorted(params)}")
        return {k: jax.tree.map(lambda _, k=k: "train" if k == "head" else "freeze", v)
                for k, v in params.items()}
    raise ValueError(f"trainable={trainable!r} is not one of ['all', 'head']")


def make_optimizer(opt, params, trainable: str) -> optax.GradientTransformation:
    """The direction transformation, with frozen parameters getting zero updates (and no
    optimizer state, so weight decay and momentum never move them)."""
    tx = direction(opt)
    if trainable == "all":
        return tx
    return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()},
                                 trainable_labels(params, trainable))
