"""E1 Quadrant ImageNet (4QI, SPEC.md): how far from the image border can location be exploited?

A 56x56 image patch pasted at the upper-left (label 0) or bottom-right (label 1) of a 120x120
zero canvas (8 px apart, zero after normalisation), plus ``border`` extra zero pixels on every
side. Archs BagNet-33, ResNet-18 (global max pool, stem max-pool kernel 2) and DenseNet-121
(global average pool), each with a 2-way head; inits scratch (all trained), random_frozen and
pretrained_frozen (only the head trains; BatchNorm statistics still update, as in the official
runs). SGD Nesterov lr 1e-3 momentum 0.9 wd 5e-5, batch 8, reduce lr x0.1 on val-loss plateau
(patience 5) reloading the best checkpoint, stop at lr <= 1e-6, seed 1988, no augmentation.
The paper's nets are standard same-zero nets; we also run full-zero beside them.

Variants of this file:

- ``full`` (default): ImageNet validation images through tfds ``imagenet2012`` (three disjoint
  sets of one image per class: 2000 samples per split), the 3 archs x 3 inits x 7 borders.
  ``pretrained_frozen`` needs ImageNet weights (see ``init_defs``): set
  ``--config.pretrained.resnet18=/path/resnet18.pth`` etc. Expected: ~1-3 GPU-hours per arch on
  one A100/H100 (borders 256/512 dominate: 632^2 and 1144^2 canvases).

      jaxeq run experiments/quadrant.py --workdir runs/4qi

- ``quick``: the embedded photographs that ship with scikit-image (NOT ImageNet), ResNet-18
  scratch and random_frozen, same vs full zero padding, borders 0/16/32, 48 samples per split, 3
  epochs at lr 0.01. Its 12 cells took 217 s on the idle 2-core CPU (13-37 s each; inside
  ``jaxeq reproduce --quick``).

      jaxeq run experiments/quadrant.py:quick --workdir runs/4qi_quick
"""

VARIANTS = ("quick", "full")


def get_config(arg=None):
    from jaxeq.experiments_runner import experiment_config

    c = experiment_config("quadrant", arg, "E1 Quadrant ImageNet (4QI): location classification vs border size", VARIANTS)
    arg = c.variant
    t = c.train
    t.model.name = "resnet18"            # set per cell from c.archs
    t.model.kwargs = {"num_classes": 2}
    t.data.name = "quadrant"
    t.data.kwargs = {"source": "imagenet", "border": 0}  # + data_dir=... for a non-default tfds dir
    t.data.train_split = "train"
    t.data.val_split = "val"
    t.data.test_splits = ["test"]
    t.data.shuffle = True
    t.optimizer.name = "sgd"
    t.optimizer.lr = 1e-3
    t.optimizer.momentum = 0.9
    t.optimizer.nesterov = True
    t.optimizer.weight_decay = 5e-5
    t.schedule.name = "plateau"
    t.schedule.factor = 0.1
    t.schedule.patience = 5
    t.schedule.reload_best = True
    t.schedule.min_lr = 1e-6
    t.epochs = 50
    t.batch_size = 8
    t.eval_batch_size = 50
    t.seed = 1988
    t.bn_update_frozen = True
    t.log_every_steps = 100
    t.checkpoint_every_steps = 1000
    t.progress = "auto"

    c.archs = ("bagnet33", "resnet18", "densenet121")
    c.arch_defs = {
        "resnet18": {"model": {"kwargs": {"global_pool": "max", "stem_pool_kernel": 2}}},
        "bagnet33": {"model": {"kwargs": {"global_pool": "max"}}},
        "densenet121": {"model": {"kwargs": {"global_pool": "avg"}}},
    }
    c.inits = ("scratch", "random_frozen", "pretrained_frozen")
    c.init_defs = {
        "scratch": {"trainable": "all"},
        "random_frozen": {"trainable": "head"},
        "pretrained_frozen": {"trainable": "head"},
    }
    # local weight files per arch for pretrained_frozen (torchvision / BagNet .pth or .npz)
    c.pretrained = {"bagnet33": "", "resnet18": "", "densenet121": ""}
    c.variants = ("same_zero",)
    c.variant_defs = {
        "same_zero": {"model": {"kwargs": {"padding": "same", "fill": "zeros"}}},
        "full_zero": {"model": {"kwargs": {"padding": "full", "fill": "zeros"}}},
    }
    c.paper_key = {"same_zero": "same_zero"}
    c.borders = (0, 16, 32, 64, 128, 256, 512)
    c.seeds = (1988,)
    c.metrics = {"accuracy": "test"}
    c.notes = (
        "Border m = m extra zero pixels on every side of the 120x120 canvas (the official code "
        "set the first conv's padding to m instead; the difference is its default 3 px).",
        "Train, val and test use disjoint images (the official generator used one set for all three).",
        "Paper numbers were read off its figure (about +-1 point).",
    )
    if arg == "quick":
        c.archs = ("resnet18",)
        c.inits = ("scratch", "random_frozen")
        c.variants = ("same_zero", "full_zero")
        c.borders = (0, 16, 32)
        t.data.kwargs = {"source": "photos", "border": 0, "per_split": 24}  # 48 samples per split
        t.epochs = 3
        t.optimizer.lr = 0.01             # 10x the paper's: only 18 steps
        t.schedule.name = "constant"
        t.eval_batch_size = 32
        t.checkpoint_every_steps = 0
        t.progress = "off"
        c.notes = c.notes + (
            "QUICK variant (CPU): the embedded scikit-image photographs, NOT ImageNet; 48 samples "
            "per split, 3 epochs (18 steps) at constant lr 0.01: numbers are indicative, not the "
            "paper's protocol.",)
    return c
