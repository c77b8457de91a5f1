"""E4a Data efficiency (SPEC.md): does full padding need fewer training images?

ResNet-50 same vs full trained on 50/100/250/500 images per class (a fixed random subset per
seed; the chosen indices are written to the cell's workdir) and on all of ImageNet, with the stock
recipe (SGD lr 0.1 momentum 0.9 wd 1e-4, batch 256, 90 epochs, step x0.1 every 30,
random-resized-crop 224 + flip); top-1 on the full validation set (resize 256, center-crop 224).

- ``full`` (default): tfds ``imagenet2012``. Expected: the 'all' cells are ~2 days each on one
  A100/H100 (bfloat16), ~6 h on a v4-32; the 50..500 cells together about one 'all' cell.

      jaxeq run experiments/data_efficiency.py --workdir runs/e4a

- ``quick``: red-green images (NOT ImageNet), red_green_net same_zero vs full_zero, trained on
  10/25/100 images per class, tested on the dissimilar test set (which only a net that ignores
  absolute position can solve), 2 seeds (12 runs): 85 s on the idle 2-core CPU (2026-12-01).

      jaxeq run experiments/data_efficiency.py:quick --workdir runs/e4a_quick
"""

VARIANTS = ("quick", "full")


def get_config(arg=None):
    from jaxeq.experiments_runner import experiment_config

    c = experiment_config("data_efficiency", arg, "E4a Data efficiency: top-1 vs training images per class", VARIANTS)
    arg = c.variant
    t = c.train
    t.model.name = "resnet50"
    t.model.kwargs = {"num_classes": 1000}
    t.data.name = "imagenet"
    t.data.kwargs = {}
    t.data.train_split = "train"
    t.data.val_split = None
    t.data.test_splits = ["val"]  # ImageNet validation set (all 50k)
    t.optimizer.name = "sgd"
    t.optimizer.lr = 0.1
    t.optimizer.momentum = 0.9
    t.optimizer.weight_decay = 1e-4
    t.schedule.name = "step"
    t.schedule.step_epochs = 30
    t.schedule.factor = 0.1
    t.epochs = 90
    t.batch_size = 256
    t.eval_batch_size = 250
    t.dtype = "bfloat16"
    t.log_every_steps = 100
    t.checkpoint_every_steps = 1000

    c.variants = ("same", "full")
    c.variant_defs = {
        "same": {"model": {"kwargs": {"padding": "same", "fill": "zeros"}}},
        "full": {"model": {"kwargs": {"padding": "full", "fill": "zeros"}}},
    }
    c.paper_key = {"same": "same", "full": "full"}
    c.images_per_class = ("all", 500, 250, 100, 50)
    # the subset applies to the training split only (top-1 is always on the full val set)
    c.images_per_class_defs = {str(n): {"split_kwargs": {"train": {"per_class": n}}}
                               for n in (500, 250, 100, 50)}
    c.targets = {"images_per_class": None}
    c.seeds = (0,)
    c.metrics = {"top1": "val"}
    c.notes = ("Paper's full-padding numbers partly read off its figure.",)
    if arg == "quick":
        t.model.name = "red_green_net"
        t.model.kwargs = {}
        t.data.name = "red_green"
        t.data.kwargs = {}
        t.data.val_split = "val"
        t.data.test_splits = ["test_dissimilar"]
        t.optimizer.name = "adadelta"
        t.optimizer.lr = 1.0
        t.optimizer.rho = 0.9
        t.optimizer.eps = 1e-6
        t.optimizer.weight_decay = 5e-5
        t.schedule.name = "constant"
        t.epochs = 15
        t.batch_size = 20
        t.eval_batch_size = 500
        t.dtype = "float32"
        t.checkpoint_every_steps = 0
        t.progress = "off"
        c.variants = ("same_zero", "full_zero")
        c.variant_defs = {
            "same_zero": {"model": {"kwargs": {"padding": "same", "fill": "zeros"}}},
            "full_zero": {"model": {"kwargs": {"padding": "full", "fill": "zeros"}}},
        }
        c.paper_key = {}
        c.images_per_class = (10, 25, 100)
        # red-green classes alternate, so `size` 2n training images = n per class
        c.images_per_class_defs = {str(n): {"split_kwargs": {"train": {"size": 2 * n}}}
                                   for n in c.images_per_class}
        c.seeds = (0, 1)
        c.metrics = {"top1": "test_dissimilar"}
        c.notes = c.notes + (
            "QUICK variant (CPU): red-green images, NOT ImageNet; top-1 on the dissimilar test set "
            "vs training images per class. Not comparable with the paper's numbers.",)
    return c
