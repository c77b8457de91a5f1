"""E4a Data efficiency (SPEC.md): does full padding need fewer training images?

ResNet-50 same vs full trained on 50/100/250/500 images per class and on all of ImageNet, with
the stock recipe (SGD lr 0.1 momentum 0.9 wd 1e-4, batch 256, 90 epochs, step x0.1 every 30,
random-resized-crop 224 + flip); top-1 on the full validation set (resize 256, center-crop 224).

Training subsets: 50 per class is the paper's own list (its Exp4 ``train.pickle``, 50,000 files,
shipped as ``jaxeq/resources/imagenet50_official.json``; ``subset='official50'``), matched to
tfds imagenet2012 by file name; a listed file missing from the data stops the cell with an error
naming it. The official code ships no list, script or seed for 100/250/500 per class, so those
are seeded random subsets (a permutation per class from the run's seed); the chosen record
indices of every subset are written to the cell's workdir and reused when it resumes.

- ``full`` (default): tfds ``imagenet2012``, an accelerator's job: each 'all' cell is a full
  90-epoch ImageNet training; the 50..500 cells together cost about one 'all' cell.

      jaxeq run data_efficiency --workdir runs/e4a

- ``quick``: red-green images (NOT ImageNet), red_green_net same_zero vs full_zero, trained on
  10/25/100 images per class, tested on the dissimilar test set (which only a net that ignores
  absolute position can solve), 2 seeds (12 runs).

      jaxeq run data_efficiency:quick --workdir runs/e4a_quick

- ``cpu``: the CPU analog on real photographs, NOT ImageNet: ``photo_id`` (14 classes), ResNet-18
  narrowed to width 16 (same padding structure, a quarter of the channels, for the CPU budget)
  same vs full, trained on 5 / 10 / 25 / 50 / 100 (= all) crops per class, 5 seeds (50 cells);
  the same recipe for every size, as the paper (``recipes.photo_id_cpu``: 6 epochs, so the
  small sets take fewer steps), selected on val (centre 48, 20 per class), top-1 on test
  (centre 48, 40 per class). The report adds full - same per size with a 95% t-interval and
  puts the paper's ImageNet curve in its own table and on its own axis (another data set).

      jaxeq run data_efficiency:cpu --workdir runs/e4a_cpu

  Its wall time and results: experiments/RESULTS.md (CPU analogs section).
"""

from jaxeq.experiments.configs.recipes import (adadelta_red_green, experiment_config,
                                              imagenet_sgd_90_epochs, padding_defs, photo_id_cpu,
                                              quiet_cpu_run)

VARIANTS = ("quick", "cpu", "full")


def get_config(arg=None):
    c = experiment_config("data_efficiency", arg, "E4a Data efficiency: top-1 vs training images per class", VARIANTS)
    arg = c.variant
    t = c.train
    t.model.name = "resnet50"
    t.model.kwargs = {"num_classes": 1000}
    t.data.name = "imagenet"
    t.data.kwargs = {}
    t.data.train_split = "train"
    # As the official Exp4 main.py: top-1 on the validation set after every epoch, the epoch with
    # the highest one kept as model_best and reported (the selection set is the reported set).
    t.data.val_split = "val"
    t.data.test_splits = ["val"]  # ImageNet validation set (all 50k)
    imagenet_sgd_90_epochs(t)

    c.variants = ("same", "full")
    c.variant_defs = padding_defs(same=("same", "zeros"), full=("full", "zeros"))
    c.paper_key = {"same": "same", "full": "full"}
    c.images_per_class = ("all", 500, 250, 100, 50)
    # the subset applies to the training split only (top-1 is always on the full val set)
    c.images_per_class_defs = {str(n): {"split_kwargs": {"train": {"per_class": n}}}
                               for n in (500, 250, 100)}
    # the paper's own 50-per-class list (tfds imagenet2012 file names)
    c.images_per_class_defs["50"] = {"split_kwargs": {"train": {"per_class": 50,
                                                                "subset": "official50"}}}
    c.targets = {"images_per_class": None}
    c.seeds = (0,)
    c.metrics = {"top1": "val", "top1_final": "val@final"}
    c.notes = (
        "Paper's full-padding numbers partly read off its figure.",
        "Training subsets: 50/class = the official ImageNet-50 list (Exp4 train.pickle, "
        "matched by file name); 100/250/500 per class = seeded random subsets (the official "
        "repository provides no list or generator for these sizes).",
        "top1: model_best as the official Exp4 main.py keeps it, the epoch with the highest "
        "top-1 on this same validation set; top1_final: the model after the last epoch (no "
        "selection on the reported set). float32, as the paper.",
    )
    if arg == "cpu":
        _cpu(c, t)
    if arg == "quick":
        t.model.name = "red_green_net"
        t.model.kwargs = {}
        t.data.name = "red_green"
        t.data.kwargs = {}
        t.data.val_split = "val"
        t.data.test_splits = ["test_dissimilar"]
        t.best_by = "val_loss"
        adadelta_red_green(t)
        t.epochs = 15
        t.batch_size = 20
        t.eval_batch_size = 500
        t.dtype = "float32"
        quiet_cpu_run(t)
        c.variants = ("same_zero", "full_zero")
        c.variant_defs = padding_defs(same_zero=("same", "zeros"), full_zero=("full", "zeros"))
        c.paper_key = {}
        c.images_per_class = (10, 25, 100)
        # red-green classes alternate, so `size` 2n training images = n per class
        c.images_per_class_defs = {str(n): {"split_kwargs": {"train": {"size": 2 * n}}}
                                   for n in c.images_per_class}
        c.seeds = (0, 1)
        c.metrics = {"top1": "test_dissimilar"}
        c.notes = c.notes[:1] + (  # the ImageNet subset note does not apply here
            "QUICK variant (CPU): red-green images, NOT ImageNet; top-1 on the dissimilar test set "
            "vs training images per class. Not comparable with the paper's numbers.",)
    return c


CPU_WIDTH = 16   # ResNet-18 first-stage width of the cpu variant (torchvision: 64)
CPU_EPOCHS = 6   # the same for every subset size, as the paper's 90 for every size


def _cpu(c, t) -> None:
    """The CPU analog on the photo_id photographs (module docstring, ``cpu``)."""
    photo_id_cpu(t, width=CPU_WIDTH, epochs=CPU_EPOCHS)
    c.variants = ("same", "full")
    c.images_per_class = (5, 10, 25, 50, 100)
    # the subset applies to the training split only (val and test keep 20 / 40 per class)
    c.images_per_class_defs = {str(n): {"split_kwargs": {"train": {"per_class": n}}}
                               for n in c.images_per_class}
    c.seeds = (0, 1, 2, 3, 4)
    c.metrics = {"top1": "test"}
    c.pairs = (("full", "same"),)
    c.notes = (
        "CPU variant: photo_id (which of 14 scikit-image sample photographs a crop comes from; "
        "NOT ImageNet). The paper's ImageNet curve is another data set: it sits in its own table "
        "and on its own axis.",
        f"ResNet-18 at width {CPU_WIDTH} (torchvision: 64; same padding structure, fewer "
        f"channels, for the CPU budget) on random 48x48 windows of 64x64 crops; 5 / 10 / 25 / "
        f"50 / 100 (= all) training crops per class, each size the first n of the seed's 100 "
        f"(nested subsets); the same recipe for every size, as the paper (same epochs, so "
        f"smaller sets take fewer steps): {CPU_EPOCHS} epochs, batch 32, SGD lr 0.05 "
        f"(chosen on val, recipes.PHOTO_ID_CPU_LR) momentum 0.9 wd 1e-4, x0.1 at 1/3 and "
        f"2/3; best epoch by val top-1 (centre 48, 280 images); top-1 on test (centre 48, 560 "
        f"images).",
        "Paired differences full - same: per seed, mean over seeds with a 95% Student "
        "t-interval (sample std, ddof=1).",
    )
