"""``jaxeq bench models``: ResNet-18/50 (same and full) forward and train step, DenseNet-121
forward; 112x112, batch 32, float32; jaxeq vs PyTorch eager NCHW and channels_last.

Both sides hold the same weights (torch's random init loaded with
:func:`jaxeq.weights.load_torch`). Forward rows compare eval-mode logits; train rows run one
step (forward, cross-entropy, backward, SGD with momentum 0.9) from identical weights and
compare the loss and the parameter updates of the first conv and the classifier before timing.

Train rows are checked per leaf against a float64 PyTorch step from the same weights, not
against torch's float32 step. The loss and the classifier's update are well conditioned: in
float32 jaxeq must match the float64 step to ``EXACT_RTOL`` (relative to the leaf's max), or,
where even torch's more accurate layout misses that (ResNet-50's head update at 112, batch 32:
torch 3.2e-5 NCHW, 1.0e-4 channels_last), to ``F64_FACTOR`` times that layout's error. The
stem conv's update is not: at 112x112, batch 32 it is a sum of ~10^5 products that nearly
cancel (a conv followed by train-mode BatchNorm has a gradient orthogonal to its weight), and
float32 gets it only to a few 1e-3 of its size in *either* framework (BENCHMARKS.md, "How the
train rows are checked"). So that leaf must be within ``F64_FACTOR`` times torch's own error on
it (floor ``TRAIN_RTOL``). bfloat16 rows (compute in bfloat16: jaxeq's ``dtype``, torch's
autocast) apply the torch-relative rule to every leaf with a floor of ``BF16_TRAIN_RTOL``:
rounding dominates in both frameworks, so only "no worse than torch" is checkable. Each leaf's
error (jaxeq's and torch's) and tolerance are recorded in the row's ``extra``; a row that fails
its check is marked and not timed.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from jaxeq.bench import harness

LR = 0.01
TRAIN_RTOL = 1e-3  # floor for the stem update in float32 (see the module docstring)
EXACT_RTOL = 1e-5  # loss and head update in float32: well conditioned
TRAIN_LEAVES = ("loss", "conv1_update", "head_update")
BF16_TRAIN_RTOL = 0.1  # floor for bfloat16 compute (8-bit mantissa)
F64_FACTOR = 2.0  # jaxeq may be at most this much further from float64 than torch (same dtype)


def make_train_step(model, tx):
    """Pure train step ``(params, batch_stats, opt_state), x, y -> (new state, loss)``."""
    import jax
    import jax.numpy as jnp
    import optax

    def loss_fn(params, bs, x, y):
        logits, new = model.apply({"params": params, "batch_stats": bs}, x, train=True,
                                  mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), y).mean()
        return loss, new["batch_stats"]

    def step(state, x, y):
        params, bs, opt = state
        (loss, bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, bs, x, y)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), bs, opt), loss

    return step


def torch_train_step(torch, net, opt):
    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def setup(name, padding, batch, size, device, *, dtype="float32", seed=0):
    """(jaxeq model, variables, torch net (NCHW), x numpy NHWC, labels numpy)."""
    import torch
    import jaxeq.models
    import jaxeq.weights
    from jaxeq.bench import torch_nets
    torch.manual_seed(seed)
    net = torch_nets.build(name, padding)
    # Non-trivial BN statistics and affine terms, so eval-mode parity tests them too.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    variables = jaxeq.weights.load_torch(net.state_dict(), name, padding=padding)
    model = jaxeq.models.get(name, padding=padding, dtype=dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, size, size, 3)).astype(np.float32)
    y = rng.integers(0, 1000, batch).astype(np.int32)
    return model, variables, net.to(harness.torch_device(device)), x, y


def _torch_f64_step(torch, net, x, y):
    """[loss, conv1 update (HWIO), head update (in, out)] of one float64 torch SGD step."""
    import copy
    n = copy.deepcopy(net).cpu().double().train()
    opt = torch.optim.SGD(n.parameters(), lr=LR, momentum=0.9)
    w0, f0 = n.conv1.weight.detach().clone(), n.fc.weight.detach().clone()
    tx = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2).contiguous()
    loss = torch_train_step(torch, n, opt)(tx, torch.from_numpy(y).long())
    return [float(loss.detach()), (n.conv1.weight.detach() - w0).permute(2, 3, 1, 0).numpy(),
            (n.fc.weight.detach() - f0).T.numpy()]


def forward_flops(model, variables, x) -> int:
    return harness.count_flops(lambda v, x: model.apply(v, x, train=False), variables, x)


def _torch_inputs(torch, x, y, device):
    dev = harness.torch_device(device)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(dev)
    return {"eager-NCHW": (tx, torch.contiguous_format),
            "eager-channels_last": (tx.contiguous(memory_format=torch.channels_last),
                                    torch.channels_last)}, torch.from_numpy(y).long().to(dev)


def forward_rows(name, padding, *, batch, size, repeats, warmup, device, command, peak):
    import copy
    import jax
    torch = harness.import_torch()
    model, variables, net, xn, _ = setup(name, padding, batch, size, device)
    x = jax.device_put(xn)
    fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
    flops = forward_flops(model, variables, x)
    inputs, _ = _torch_inputs(torch, xn, np.zeros(batch, np.int32), device)
    nets = {}
    for v, (tx, fmt) in inputs.items():
        nets[v] = copy.deepcopy(net).to(memory_format=fmt).eval()

    def run_torch(v):
        with torch.no_grad():
            out = nets[v](inputs[v][0])
        harness.sync_torch(device)
        return out

    row = f"models/{name}/fwd/{padding}/{size}/b{batch}/float32"
    return harness.compare(
        row, "models", lambda: fwd(variables, x).block_until_ready(),
        {v: (lambda v=v: run_torch(v)) for v in nets},
        outputs=lambda: (fwd(variables, x), {v: run_torch(v) for v in nets}),
        check=harness.Check(rtol=1e-4), repeats=repeats, warmup=warmup, command=command,
        extra=_throughput_extra(flops, batch, peak))


def _throughput_extra(flops, batch, peak, train=False):
    return {"flops": flops, "batch": batch, "train_flops_convention": "3 x forward" if train
            else None, "matmul_peak_gflops": peak}


def _place(xn, yn, state0, ndev):
    """Batch and train state on the devices: with ``ndev`` > 1 the batch sharded over a 1-D
    ``data`` mesh and the state replicated."""
    import jax
    if ndev == 1:
        return jax.device_put(xn), jax.device_put(yn), state0
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    mesh = Mesh(np.array(jax.devices()[:ndev]), ("data",))
    batch = NamedSharding(mesh, P("data"))
    return (jax.device_put(xn, batch), jax.device_put(yn, batch),
            jax.device_put(state0, NamedSharding(mesh, P())))


def _f64_check(ours, refs, ref64, dtype, extra) -> harness.Check:
    """How jaxeq's step is judged, leaf by leaf against the float64 step (see the module
    docstring). Records every leaf's error and tolerance in ``extra``."""
    named = lambda errs: dict(zip(TRAIN_LEAVES, errs))  # noqa: E731
    torch_err = {v: harness.leaf_rel_diffs(refs[v], ref64) for v in refs}
    worst_torch = [max(errs[i] for errs in torch_err.values()) for i in range(len(TRAIN_LEAVES))]
    best_torch = [min(errs[i] for errs in torch_err.values()) for i in range(len(TRAIN_LEAVES))]
    if dtype == "float32":
        rtols = tuple(max(TRAIN_RTOL, F64_FACTOR * worst_torch[i]) if leaf == "conv1_update"
                      else max(EXACT_RTOL, F64_FACTOR * best_torch[i])
                      for i, leaf in enumerate(TRAIN_LEAVES))
    else:
        rtols = tuple(max(BF16_TRAIN_RTOL, F64_FACTOR * e) for e in worst_torch)
    extra["parity_reference"] = "torch float64 step"
    extra[f"torch_{dtype}_rel_err_vs_f64"] = {v: named(e) for v, e in torch_err.items()}
    extra[f"jaxeq_{dtype}_rel_err_vs_f64"] = named(harness.leaf_rel_diffs(ours, ref64))
    extra["rtol_per_leaf"] = named(rtols)
    extra[f"torch_vs_jaxeq_{dtype}_rel_diff"] = {v: named(harness.leaf_rel_diffs(ours, refs[v]))
                                                 for v in refs}
    return harness.Check(leaf_rtols=rtols)


def train_rows(name, padding, *, batch, size, repeats, warmup, device, command, peak,
               dtype="float32", row_prefix="models", jax_devices=None, variants=None):
    """Train-step rows; ``jax_devices`` > 1 shards the batch over a 1-D mesh (params
    replicated); ``dtype="bfloat16"`` computes in bfloat16 on both sides (torch autocast)."""
    import copy
    import jax
    import optax
    torch = harness.import_torch()
    model, variables, net, xn, yn = setup(name, padding, batch, size, device, dtype=dtype)
    tx = optax.sgd(LR, momentum=0.9)
    state0 = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
    step = make_train_step(model, tx)
    ndev = jax_devices or 1
    x, y, state0 = _place(xn, yn, state0, ndev)
    jstep = jax.jit(step, donate_argnums=0)
    copy_state = lambda s: jax.tree.map(lambda a: a.copy(), s)  # noqa: E731
    flops = 3 * forward_flops(model, variables, xn[:1]) * batch

    inputs, ty = _torch_inputs(torch, xn, yn, device)
    if variants is not None:
        inputs = {v: inputs[v] for v in variants}
    autocast = dtype == "bfloat16"

    def torch_setup(v):
        n = copy.deepcopy(net).to(memory_format=inputs[v][1]).train()
        opt = torch.optim.SGD(n.parameters(), lr=LR, momentum=0.9)
        st = torch_train_step(torch, n, opt)

        def run():
            with torch.autocast(harness.torch_device(device), dtype=torch.bfloat16,
                                enabled=autocast):
                loss = st(inputs[v][0], ty)
            harness.sync_torch(device)
            return loss
        return n, run

    def outputs():
        s0 = copy_state(state0)
        p0 = jax.tree.map(np.asarray, s0[0])
        (p1, _, _), loss = jstep(s0, x, y)
        ours = [float(loss), np.asarray(p1["conv1"]["kernel"]) - p0["conv1"]["kernel"],
                np.asarray(p1["head"]["kernel"]) - p0["head"]["kernel"]]
        refs = {}
        for v in inputs:
            n, run = torch_setup(v)
            w0 = n.conv1.weight.detach().clone()
            f0 = n.fc.weight.detach().clone()
            loss = run()
            refs[v] = [float(loss.detach()), (n.conv1.weight.detach() - w0).permute(2, 3, 1, 0),
                       (n.fc.weight.detach() - f0).T]
        return ours, refs

    extra = _throughput_extra(flops, batch, peak, train=True)
    extra["jax_devices"] = ndev
    ours, refs = outputs()
    ref64 = _torch_f64_step(torch, net, xn, yn)
    check = _f64_check(ours, refs, ref64, dtype, extra)
    outputs = lambda: (ours, {v: ref64 for v in refs})  # noqa: E731

    state = {"s": copy_state(state0)}

    def run_jax():
        state["s"], loss = jstep(state["s"], x, y)
        loss.block_until_ready()

    runners = {v: torch_setup(v)[1] for v in inputs}
    suffix = f"/{ndev}dev" if jax_devices else ""
    row = f"{row_prefix}/{name}/train/{padding}/{size}/b{batch}/{dtype}{suffix}"
    return harness.compare(row, row_prefix, run_jax, runners, outputs=outputs,
                           check=check, repeats=repeats, warmup=warmup,
                           command=command, extra=extra)


def rows(*, repeats, warmup, device, quick, only, command, log, **_) -> list[dict]:
    # quick: batch 4 at 64x64 keeps train-mode BatchNorm well conditioned (>= 16 values per
    # channel in the last stage), so the parity check stays meaningful at smoke-test size.
    batch, size = (4, 64) if quick else (32, 112)
    torch = harness.import_torch()
    specs = [("resnet18", "same"), ("resnet18", "full"), ("resnet50", "same"),
             ("resnet50", "full")]
    if quick:
        specs = specs[:2]
    plan = []
    for name, padding in specs:
        for kind in ("fwd", "train"):
            plan.append((name, padding, kind))
    if not quick:
        plan.append(("densenet121", "same", "fwd"))
    out = []
    peak = None
    for name, padding, kind in plan:
        row = f"models/{name}/{kind}/{padding}/{size}/b{batch}/float32"
        if not harness.wanted(row, only):
            continue
        if torch is None:
            got = [harness.skipped_row(row, "models", harness.NO_TORCH, command=command)]
        else:
            if peak is None:
                peak = harness.matmul_peak_gflops(quick=quick)
                log(f"fp32 matmul peak: {peak:.0f} GFLOP/s")
            fn = forward_rows if kind == "fwd" else train_rows
            got = harness.rows_or_error(row, "models", partial(
                fn, name, padding, batch=batch, size=size, repeats=repeats, warmup=warmup,
                device=device, command=command, peak=peak), command=command)
        for r in got:
            log(r)
        out.extend(got)
    return out
