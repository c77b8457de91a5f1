"""E3 Shift robustness (SPEC.md): does full padding (and BlurPool) make ResNets more shift-robust?

ResNet-18/34/50/101 in four variants (same, full, same+BlurPool, full+BlurPool), trained on the
200 ImageNet-A classes of ImageNet: SGD lr 0.1 momentum 0.9 wd 1e-4, batch 256, 90 epochs, lr x0.1
every 30, random-resized-crop 224 + flip, float32.

Which parameters are evaluated: as the official Exp3 ``main.py``, every epoch ends with top-1 on
the ImageNet validation images of the 200 classes (resize 288, center-crop 224: its validate())
and the epoch with the highest top-1 is kept as ``model_best``; that best-val checkpoint gives the
headline numbers (``train.best_by='val_accuracy'``; note that, as in the official code, the
selection set is the reported set). The model after the last epoch is evaluated beside it
(metrics ``*_final``; ``eval.models``). Shift metrics on the validation images resized 288 and
center-cropped 288: diagonal shift = top-1 averaged over the 224 crops at offsets (o, o),
o = 0..64 (``jq.diagonal_shift_accuracy``); consistency = % of images whose top-1 agrees on two
224 crops at independent offsets in {0..63}^2, 5 passes (``jq.crop_consistency``).

- ``full`` (default): the paper's protocol on tfds ``imagenet2012`` (prepared once, see
  ``jaxeq data --help``): 16 cells of 90 epochs on the 200-class subset (~260k images), an
  accelerator's job.

      jaxeq run shift_robustness --workdir runs/e3

- ``quick``: a pipeline check on CPU, NOT the paper's data: ResNet-18 same vs full trained for a
  few epochs on the red-green images (2 classes, 32x32), evaluated with 24x24 crops at offsets
  0..8 (2 cells).

      jaxeq run shift_robustness:quick --workdir runs/e3_quick

- ``cpu``: the CPU analog on real photographs, NOT ImageNet: ``photo_id`` (14 classes = which
  scikit-image sample photograph a crop comes from; label independent of position). ResNet-18
  narrowed to width 16 (torchvision 64: the same padding structure and depth, a quarter of the
  channels, for the CPU budget) in the four paper variants (S+Blur / F+Blur as above), 3 seeds
  (12 cells); the stock recipe scaled (``recipes.photo_id_cpu``): random 48 windows of the 64
  crops for training, 6 epochs, model selection on val (centre 48), top-1 on test (centre 48).
  Shift metrics on the whole 64x64 test crops (280 of them): diagonal o = 0..16, crop
  consistency (offsets {0..15}^2, 5 passes) and circular-shift consistency (shifts
  [-16, 16)^2 of the centre 48, 5 passes); the report adds the paired differences full - same
  and full_blurpool - same_blurpool over seeds with 95% t-intervals.

      jaxeq run shift_robustness:cpu --workdir runs/e3_cpu

  Its wall time and results: experiments/RESULTS.md (CPU analogs section).
"""
import ml_collections

from jaxeq.experiments.configs.recipes import (experiment_config, imagenet_sgd_90_epochs, photo_id_cpu,
                                              quiet_cpu_run)

VARIANTS = ("quick", "cpu", "full")


def get_config(arg=None):
    c = experiment_config("shift_robustness", arg, "E3 Shift robustness: diagonal-shift accuracy and crop consistency", VARIANTS)
    arg = c.variant
    t = c.train
    t.model.name = "resnet50"
    t.model.kwargs = {"num_classes": 200}
    t.data.name = "imagenet_a200"
    # eval_* apply to the non-augmented splits only: the official validate() resizes 288
    # (256 + its shift_inc 32) and center-crops 224
    t.data.kwargs = {"eval_resize": 288, "eval_crop": 224}
    t.data.train_split = "train"
    t.data.val_split = "val"      # selects model_best (highest top-1), as the official code
    t.data.test_splits = ["val"]  # ImageNet validation set (the same images: official protocol)
    imagenet_sgd_90_epochs(t)     # selection by top-1 (model_best), float32 as the paper
    t.seed = 0

    c.archs = ("resnet18", "resnet34", "resnet50", "resnet101")
    c.variants = ("same", "full", "same_blurpool", "full_blurpool")
    c.variant_defs = {  # same, full, same_blurpool, full_blurpool
        padding + ("_blurpool" if pool == "blur" else ""):
            {"model": {"kwargs": {"padding": padding, "fill": "zeros", "pool": pool}}}
        for pool in ("max", "blur") for padding in ("same", "full")}
    c.paper_key = {v: v for v in c.variants}
    c.seeds = (0,)
    # top-1 at 288/224 as the official validate(): best-val checkpoint, and the final model
    c.metrics = {"top1": "val", "top1_final": "val@final"}

    # evaluation after training: the split (and its data kwargs) and the shift protocol
    c.eval = ml_collections.ConfigDict()
    c.eval.kind = "shift_robustness"
    c.eval.split = "val"
    c.eval.data_kwargs = {"eval_resize": 288, "eval_crop": 288}
    c.eval.max_images = 0          # 0: all images of the split
    c.eval.crop = 224
    c.eval.max_offset = 64         # offsets 0..63 for consistency, 0..64 for the diagonal
    c.eval.passes = 5
    c.eval.batch_size = 100
    c.eval.seed = 0
    c.eval.models = ("best", "final")  # best-val checkpoint (headline) and the last epoch's model
    c.notes = (
        "Diagonal: top-1 averaged over 224 crops at (o, o), o = 0..64, of the 288x288 center "
        "crop; consistency: two independent offsets in {0..63}^2 per image, 5 passes (SPEC E3). "
        "The official validate_shift() draws one offset pair per batch instead of per image: "
        "the same expected agreement, a different variance.",
    )
    if arg == "cpu":
        _cpu(c, t)
    if arg == "quick":
        c.archs = ("resnet18",)
        c.variants = ("same", "full")
        t.model.kwargs = {"num_classes": 2}
        t.data.name = "red_green"
        t.data.kwargs = {}
        t.data.val_split = "val"
        t.data.test_splits = ["test"]
        t.optimizer.lr = 0.01
        t.schedule.name = "constant"
        t.epochs = 2
        t.batch_size = 50
        t.eval_batch_size = 200
        t.dtype = "float32"
        quiet_cpu_run(t)
        c.metrics = {"top1": "test", "top1_final": "test@final"}
        c.eval.split = "test"
        c.eval.data_kwargs = {}
        c.eval.max_images = 200
        c.eval.crop = 24
        c.eval.max_offset = 8
        c.eval.passes = 2
        c.notes = c.notes + (
            "QUICK variant (CPU): a pipeline check on the red-green images with 24x24 crops of the "
            "32x32 images at offsets 0..8; NOT ImageNet, not comparable with the paper's numbers.",)
    return c


CPU_WIDTH = 16   # ResNet-18 first-stage width of the cpu variant (torchvision: 64)
CPU_EPOCHS = 6
CPU_SHIFT_PER_CLASS = 20  # test crops per class in the shift metrics (of the 40 in top-1)


def _cpu(c, t) -> None:
    """The CPU analog on the photo_id photographs (module docstring, ``cpu``)."""
    photo_id_cpu(t, width=CPU_WIDTH, epochs=CPU_EPOCHS)
    c.archs = ("resnet18",)
    c.seeds = (0, 1, 2)
    c.metrics = {"top1": "test"}
    c.eval.split = "test"
    # the whole 64x64 test crops, the first CPU_SHIFT_PER_CLASS of each class
    c.eval.data_kwargs = {"crop": None, "per_class": CPU_SHIFT_PER_CLASS}
    c.eval.max_images = 0
    c.eval.crop = 48
    c.eval.max_offset = 16   # diagonal o = 0..16; consistency offsets in {0..15}^2
    c.eval.passes = 5
    c.eval.batch_size = 140
    c.eval.models = ("best",)
    c.eval.circular = True
    c.eval.circular_max_shift = 16
    c.pairs = (("full", "same"), ("full_blurpool", "same_blurpool"))
    c.notes = (
        "CPU variant: photo_id (which of 14 scikit-image sample photographs a crop comes from; "
        "NOT ImageNet), the paper's numbers beside ours are ImageNet's, another data set.",
        f"ResNet-18 at width {CPU_WIDTH} (torchvision: 64; same padding structure, fewer "
        f"channels, for the CPU budget), trained on random 48x48 windows of 64x64 crops "
        f"(1400 images), {CPU_EPOCHS} epochs, batch 32, SGD lr 0.05 (chosen on val, "
        f"recipes.PHOTO_ID_CPU_LR) momentum 0.9 wd 1e-4, x0.1 at 1/3 and 2/3; best epoch by "
        f"val top-1 (centre 48); top-1 on test (centre 48, 560 images).",
        f"Shift metrics on the whole 64x64 test crops ({CPU_SHIFT_PER_CLASS} per class, "
        f"{14 * CPU_SHIFT_PER_CLASS} images: the first {CPU_SHIFT_PER_CLASS} of the 40 per "
        f"class that top-1 uses): diagonal = top-1 averaged over the 48 "
        "crops at (o, o), o = 0..16; crop consistency = two independent offsets in {0..15}^2, 5 "
        "passes; circular consistency = two independent circular shifts in [-16, 16)^2 of the "
        "centre 48 window, 5 passes.",
        "Paired differences: per seed (one seed = the same data, window draws and init key), "
        "mean over seeds with a 95% Student t-interval (sample std, ddof=1).",
    )
