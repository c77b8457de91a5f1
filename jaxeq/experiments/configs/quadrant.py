"""E1 Quadrant ImageNet (4QI, SPEC.md): how far from the image border can location be exploited?

A 56x56 image patch pasted at the upper-left (label 0) or bottom-right (label 1) of a 120x120
zero canvas (8 px apart, zero after normalisation), plus ``border`` extra zero pixels on every
side. Archs as the official QI_location.py runs them (their forward passes, not only the
attributes it assigns): BagNet-33 with BagNet's own valid convolutions and global AVERAGE pool
(its forward hard-codes AvgPool2d over the whole map; the AdaptiveMaxPool2d assigned to
``avgpool`` is never called), ResNet-18 with global max pool and the stem max-pool kernel 2,
stride 2, padding 1 (torchvision's MaxPool2d(3, 2, 1) with only the kernel changed), and
DenseNet-121 with global average pool; each with a 2-way head. Inits scratch (all trained),
random_frozen and pretrained_frozen (only the head trains; BatchNorm statistics still update,
as in the official runs). SGD Nesterov lr 1e-3 momentum 0.9 wd 5e-5, batch 8, reduce lr x0.1
after 6 epochs without a strict val-loss improvement (patience 5) reloading the best
checkpoint, stop once lr <= 1e-6 (after the 4th reduction: 1e-3 * 0.1**3 is just above 1e-6 in
floating point, in the official loop too), at most 30 epochs (the official default), seed 1988,
no augmentation; the best-val model is tested.

Variants of the nets: ``standard`` = each architecture as published and as the paper ran it
(same-zero torchvision ResNet-18 / DenseNet-121; BagNet-33's valid convolutions); ``full_zero``
(ours) = every conv F-Conv, the rest unchanged.

Splits: train, val and test use disjoint images; the official generator made all three from one
set, so the paper's numbers are accuracy on the training images. Both are reported: ``accuracy``
(our disjoint test set) and ``accuracy_train`` (the same best-val model on its training images:
the paper's measurement).

Variants of this file:

- ``full`` (default): ImageNet validation images through tfds ``imagenet2012`` (three disjoint
  sets of one image per class: 2000 samples per split), the 3 archs x 3 inits x 7 borders.
  ``pretrained_frozen`` needs ImageNet weights (see ``init_defs``): set
  ``--config.pretrained.resnet18=/path/resnet18.pth`` etc. Needs an accelerator (borders 256/512
  dominate: 632^2 and 1144^2 canvases).

      jaxeq run quadrant --workdir runs/4qi

- ``quick``: the embedded photographs that ship with scikit-image (NOT ImageNet), BagNet-33 and
  ResNet-18, scratch and random_frozen, standard vs full zero padding, borders 0/16/32, 48
  samples per split, 3 epochs at lr 0.01. A BagNet-33 step costs about 8x a ResNet-18 step here
  (stride 1 until its first stage: 200 vs 24 GFLOP per batch of 8 at 120x120), so
  ``jaxeq reproduce --quick`` runs the ResNet-18 cells only.

      jaxeq run quadrant:quick --workdir runs/4qi_quick

- ``cpu``: E1 farther out on the embedded photographs (NOT ImageNet): as ``quick`` (BagNet-33 and
  ResNet-18, scratch and random_frozen, standard vs full zero, 48 samples per split, constant lr
  0.01) at borders 0 / 16 / 32 / 64, one seed; ResNet-18 3 epochs (18 steps, as quick),
  BagNet-33 1 epoch (6 steps: its steps cost the most). BagNet-33 skips border 64 (28 cells):
  from border 32 on, every 33x33 window that sees the patch lies inside the canvas, at either
  corner, and the corners are 64 px (8 x its stride) apart, so the standard (valid) BagNet-33's
  average-pooled output is the same for both labels whatever its weights: chance by
  construction, and the full_zero BagNet-33 is at chance from border 0 on. The report's border
  curve: accuracy vs border per arch, init and padding.

      jaxeq run quadrant:cpu --workdir runs/4qi_cpu

  Measured on the idle 2-core machine (experiments/results/e1_quadrant_cpu): 1,823 s for all
  32 cells, of which the four BagNet-33 border-64 cells took 542 s; without them about 21 min.
  More BagNet steps: ``--config.arch_defs.bagnet33.epochs=3``; its border 64:
  ``--config.skip_cells='()'``.
"""

from jaxeq.experiments.configs.recipes import experiment_config, quiet_cpu_run

VARIANTS = ("quick", "cpu", "full")


def get_config(arg=None):
    c = experiment_config("quadrant", arg, "E1 Quadrant ImageNet (4QI): location classification vs border size", VARIANTS)
    arg = c.variant
    t = c.train
    t.model.name = "resnet18"            # set per cell from c.archs
    t.model.kwargs = {"num_classes": 2}
    t.data.name = "quadrant"
    t.data.kwargs = {"source": "imagenet", "border": 0}  # + data_dir=... for a non-default tfds dir
    t.data.train_split = "train"
    t.data.val_split = "val"
    t.data.test_splits = ["test", "train"]   # ours (disjoint) and the paper's (training images)
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
    t.schedule.threshold = 0.0       # the official loop: any strict improvement resets patience
    t.epochs = 30
    t.batch_size = 8
    t.eval_batch_size = 50
    t.seed = 1988
    t.bn_update_frozen = True
    t.log_every_steps = 100
    t.checkpoint_every_steps = 1000
    t.progress = "auto"

    c.archs = ("bagnet33", "resnet18", "densenet121")
    c.arch_defs = {
        "resnet18": {"model": {"kwargs": {"global_pool": "max", "stem_pool_kernel": 2,
                                          "stem_pool_padding": 1}}},
        "bagnet33": {"model": {"kwargs": {"global_pool": "avg"}}},
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
    c.variants = ("standard",)
    c.variant_defs = {
        "standard": {},   # each model's own default padding: what the paper ran
        "full_zero": {"model": {"kwargs": {"padding": "full", "fill": "zeros"}}},
    }
    c.paper_key = {"standard": "standard"}
    c.borders = (0, 16, 32, 64, 128, 256, 512)
    c.seeds = (1988,)
    c.metrics = {"accuracy": "test", "accuracy_train": "train"}
    c.notes = (
        "Border m = m extra zero pixels on every side of the 120x120 canvas (the official code "
        "set the first conv's padding to m instead; for ResNet-18 and DenseNet-121 the difference "
        "is their stem's own 3 px, for BagNet-33, whose first conv is 1x1 and unpadded, none).",
        "test: disjoint images (ours); train images: the same best-val model on its training "
        "images, which is what the paper measured (its generator used one set for train, val and "
        "test).",
        "standard = each architecture as published (ResNet-18 / DenseNet-121 same-zero; BagNet-33 "
        "valid, its own code pads nothing); full_zero is ours.",
        "Paper numbers were read off its figure (about +-1 point).",
    )
    if arg == "quick":
        _quick(c, t)
    if arg == "cpu":
        _cpu(c, t)
    return c


def _quick(c, t) -> None:
    """The CPU variant: the embedded photographs, ResNet-18 and BagNet-33, 3 borders, 3 epochs."""
    c.archs = ("bagnet33", "resnet18")
    c.inits = ("scratch", "random_frozen")
    c.variants = ("standard", "full_zero")
    c.borders = (0, 16, 32)
    t.data.kwargs = {"source": "photos", "border": 0, "per_split": 24}  # 48 samples per split
    t.epochs = 3
    t.optimizer.lr = 0.01             # 10x the paper's: only 18 steps
    t.schedule.name = "constant"
    t.eval_batch_size = 32
    quiet_cpu_run(t)
    c.notes = c.notes + (
        "QUICK variant (CPU): the embedded scikit-image photographs, NOT ImageNet; 48 samples "
        "per split, 3 epochs (18 steps) at constant lr 0.01: numbers are indicative, not the "
        "paper's protocol.",)


CPU_PER_SPLIT = 24   # photographs per split and location: 48 samples per split
CPU_EPOCHS = {"resnet18": 3, "bagnet33": 1}  # 18 and 6 SGD steps of batch 8


def _cpu(c, t) -> None:
    """The CPU variant farther out: borders 0..64, both archs (module docstring, ``cpu``)."""
    _quick(c, t)
    c.borders = (0, 16, 32, 64)
    t.data.kwargs = {"source": "photos", "border": 0, "per_split": CPU_PER_SPLIT}
    t.epochs = max(CPU_EPOCHS.values())
    for arch, epochs in CPU_EPOCHS.items():
        c.arch_defs[arch]["epochs"] = epochs
    c.seeds = (1988,)
    c.skip_cells = ({"arch": "bagnet33", "border": 64},)
    c.notes = c.notes[:-1] + (
        f"CPU variant: the embedded scikit-image photographs, NOT ImageNet; "
        f"{2 * CPU_PER_SPLIT} samples per split, constant lr 0.01 (as quick), epochs per arch "
        f"{CPU_EPOCHS} (BagNet-33 fewer: its step costs several ResNet-18 steps), one seed; "
        f"borders 0 / 16 / 32 / 64. Indicative, not the paper's protocol.",
        "BagNet-33 does not run border 64: from border 32 on the standard (valid) BagNet-33 "
        "gives both corners the same output whatever its weights (every 33x33 window that sees "
        "the patch lies inside the canvas; the corners are 64 px, 8 strides, apart), so chance "
        "by construction.",)
