"""E0 Rook (SPEC.md): can a fully convolutional net with same-zero padding classify absolute position?

Two 32x32 grayscale images (values in [0, 1], not normalised): the same ~16x13 rook patch at the
top-left (class 0) or bottom-right (class 1). Net: one 5x5 conv (1 filter, no bias) -> ReLU ->
global max pool -> linear(1 -> 2). SGD lr 0.1 momentum 0.9, batch 1, 100 epochs, train = test =
the two images, 5 seeds. Paper: 100% on every seed with S-Conv (same zeros). We add F-Conv (full
zeros), expected at chance (50%): the two images are translates of each other on a zero canvas and
a full-zero conv + global max pool is exactly invariant to that translation, so both images get
the same logits.

The protocol is so small that the full and the quick variants are the same runs on a CPU:

    jaxeq run rook --workdir runs/rook          # 10 runs (2 variants x 5 seeds)
    jaxeq run rook:quick --workdir runs/rook    # same protocol (alias)
"""

from jaxeq.experiments.configs.recipes import experiment_config, padding_defs, quiet_cpu_run

VARIANTS = ("quick", "full")


def get_config(arg=None):
    c = experiment_config("rook", arg, "E0 Rook: absolute position from a same-zero conv", VARIANTS)
    t = c.train
    t.model.name = "rook_net"
    t.data.name = "rook"
    # train = test = the two images (SPEC); no validation: the model after 100 epochs is tested
    t.data.train_split = "train"
    t.data.val_split = None
    t.data.test_splits = ["test"]  # every rook split is the same two images
    t.optimizer.name = "sgd"
    t.optimizer.lr = 0.1
    t.optimizer.momentum = 0.9
    t.schedule.name = "constant"
    t.epochs = 100
    t.batch_size = 1
    t.eval_batch_size = 2
    t.log_every_steps = 200
    quiet_cpu_run(t)

    c.variants = ("same_zero", "full_zero")
    c.variant_defs = padding_defs(same_zero=("same", "zeros"), full_zero=("full", "zeros"))
    c.paper_key = {"same_zero": "s_conv_zero"}
    c.seeds = (0, 1, 2, 3, 4)
    c.metrics = {"accuracy": "test"}
    c.notes = (
        "Train = test = the two rook images (SPEC E0); the model after the last epoch is tested.",
        "full_zero: the two images are translates on a zero canvas; a full-zero conv is exactly "
        "equivariant to that translation and global max pooling makes the logits identical, so "
        "the net cannot do better than chance (50%).",
    )
    return c
