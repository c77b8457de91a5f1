"""One float64 training step of whole ResNets against PyTorch: loss, every gradient, the updated
BatchNorm running statistics and the parameters after SGD (momentum, weight decay: SPEC E3).

The PyTorch side is :mod:`jaxeq.bench.torch_nets`, written from the code each variant stands
for (torchvision's ResNet; the paper's ``resnet_fconv.py``, ``models_lpf/resnet.py`` and
``models_fconv_lpf/resnet.py`` at commit 4fae1d8). Its weights, its gradients and its updated
state all reach jaxeq through :func:`jaxeq.weights.load_torch`, so the key mapping is under test
too. The jaxeq step is the trainer's own pieces: ``model.apply(train=True)`` with mutable
``batch_stats``, the trainer's loss, ``jaxeq.train.optim.direction`` and ``p - lr * d``.

The nets are narrow (``width=16``: stages of 16..128 channels, depth and structure unchanged):
XLA:CPU runs float64 convolutions whose pads exceed ``(k-1)/2`` (every F-Conv layer, every data
gradient) on a slow generic path, and full-width nets would take minutes.
"""
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from jaxeq import models
from jaxeq.train import optim, state as train_state, steps
from jaxeq.weights import load_torch
from tests.conftest import torch_or_skip

torch = torch_or_skip()
from jaxeq.bench import torch_nets  # noqa: E402  (imports torch: only after the skip check)

TOL = 1e-9
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4  # SPEC E3
WIDTH, NUM_CLASSES = 16, 10


def _reference(depth, padding, pool, seed):
    """A float64 torch reference with random BatchNorm affines and running statistics."""
    torch.manual_seed(seed)
    net = torch_nets.resnet(depth, padding, pool, num_classes=NUM_CLASSES, width=WIDTH)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return net.double().train()


def _torch_step(net, x, y, lr=LR):
    """(loss, {name: grad} in state-dict form, state dict after one SGD step)."""
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    grads = {k: v.clone() for k, v in net.state_dict().items()}  # buffers: ignored below
    grads.update({k: p.grad.detach().clone() for k, p in net.named_parameters()})
    opt.step()
    return float(loss.detach()), grads, {k: v.clone() for k, v in net.state_dict().items()}


def _sgd():
    return optim.direction(types.SimpleNamespace(
        name="sgd", weight_decay=WEIGHT_DECAY, momentum=MOMENTUM, nesterov=False))


def _jaxeq_step(model, tx):
    """The trainer's step (jaxeq/train/steps.py) without its float32 cast of the logits."""
    @jax.jit
    def step(variables, x, y):
        params, stats = variables["params"], variables["batch_stats"]

        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                      mutable=["batch_stats"])
            per_example = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return jnp.mean(per_example), new["batch_stats"]

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        direction, _ = tx.update(grads, tx.init(params), params)
        new_params = jax.tree.map(lambda p, d: p - LR * d, params, direction)
        return loss, grads, new_stats, new_params

    return step


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.max(np.abs(b))
    diff = np.max(np.abs(a - b))
    return float(diff / scale) if scale > 0 else float(diff)


def _worst(got, want):
    got, want = traverse_util.flatten_dict(got, sep="/"), traverse_util.flatten_dict(want, sep="/")
    assert got.keys() == want.keys()
    errs = {k: rel_err(got[k], want[k]) for k in want}
    key = max(errs, key=errs.get)
    return errs[key], key


CASES = [(18, "same", "max"), (18, "full", "max"), (18, "same", "blur"), (18, "full", "blur"),
         (50, "same", "max"), (50, "full", "max")]


@pytest.mark.slow
@pytest.mark.parametrize("depth,padding,pool", CASES)
def test_one_sgd_step_matches_pytorch_float64(depth, padding, pool, x64):
    name = f"resnet{depth}"
    kwargs = dict(padding=padding, pool=pool, num_classes=NUM_CLASSES, width=WIDTH,
                  dtype=jnp.float64, param_dtype=jnp.float64)
    net = _reference(depth, padding, pool, seed=depth)
    rng = np.random.default_rng(depth)
    x = rng.standard_normal((4, 3, 32, 32))
    y = rng.integers(0, NUM_CLASSES, 4)
    variables = load_torch(net.state_dict(), name, **kwargs)
    t_loss, t_grads, t_after = _torch_step(net, x, y)

    model = models.get(name, **kwargs)
    loss, grads, new_stats, new_params = _jaxeq_step(model, _sgd())(
        variables, jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(y))
    assert loss.dtype == jnp.float64 and all(
        a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves((grads, new_stats, new_params)))

    want_grads = load_torch(t_grads, name, **kwargs)["params"]
    after = load_torch(t_after, name, **kwargs)
    old = variables["params"]
    errs = {
        "loss": abs(float(loss) - t_loss) / abs(t_loss),
        "grads": _worst(grads, want_grads),
        "batch_stats": _worst(new_stats, after["batch_stats"]),
        "params": _worst(new_params, after["params"]),
        # the update itself, a stricter test than the parameters it is added to
        "update": _worst(jax.tree.map(jnp.subtract, new_params, old),
                         jax.tree.map(jnp.subtract, after["params"], old)),
    }
    print(name, padding, pool, errs)
    assert errs["loss"] <= TOL, errs
    for k in ("grads", "batch_stats", "params", "update"):
        assert errs[k][0] <= TOL, (k, errs[k])
    # non-vacuous: the statistics and every parameter moved
    moved = _worst(new_stats, variables["batch_stats"])[0]
    assert moved > 1e-3
    assert min(rel_err(a, b) for a, b in zip(jax.tree_util.tree_leaves(new_params),
                                             jax.tree_util.tree_leaves(old))) > 0


def test_trainer_step_matches_pytorch_float64(x64):
    """The trainer's jitted step itself (``steps.make_train_step`` on a ``TrainState``), on the
    float64 ResNet-18: same updated parameters and statistics as PyTorch. The trainer's lr
    schedule is float32, so PyTorch steps with that float32 lr (0.1 -> 0.10000000149)."""
    name, kwargs = "resnet18", dict(num_classes=NUM_CLASSES, width=WIDTH, dtype=jnp.float64,
                                    param_dtype=jnp.float64)
    net = _reference(18, "same", "max", seed=7)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 32, 32))
    y = rng.integers(0, NUM_CLASSES, 4)
    variables = load_torch(net.state_dict(), name, **kwargs)
    _, _, t_after = _torch_step(net, x, y, lr=float(np.float32(LR)))
    after = load_torch(t_after, name, **kwargs)

    tx = _sgd()
    state = train_state.create(variables, tx, jnp.zeros((2,), jnp.uint32))
    step = steps.make_train_step(models.get(name, **kwargs), tx, lambda s: LR,
                                 update_batch_stats=True, train_mode=True)
    batch = {"image": jnp.asarray(x.transpose(0, 2, 3, 1)), "label": jnp.asarray(y, jnp.int32),
             "mask": jnp.ones((4,), bool)}
    new = jax.jit(step)(state, batch)
    old = variables["params"]
    errs = {"update": _worst(jax.tree.map(jnp.subtract, new.params, old),
                             jax.tree.map(jnp.subtract, after["params"], old)),
            "batch_stats": _worst(new.batch_stats, after["batch_stats"])}
    print("trainer step", errs)
    assert int(new.step) == 1 and int(new.epoch_metrics["count"]) == 4
    assert errs["update"][0] <= TOL and errs["batch_stats"][0] <= TOL, errs
