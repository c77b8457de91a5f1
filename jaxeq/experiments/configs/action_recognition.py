"""E5 Action recognition (SPEC.md): do F-Conv 3D ResNets trained from scratch on a small video
data set generalise better than same-padded ones?

The official recipe (Exp5, on Hara et al.'s 3D-ResNets-PyTorch: ``opts.py``, ``main.py``):
3D ResNet-18/34/50 (shortcut B) from scratch, clips of 16 frames at 112x112; training clips at
a random temporal position with a multi-scale corner crop and a left-right flip; SGD lr 0.1
momentum 0.9 dampening 0.9 weight decay 1e-3, batch 32 (the README's command), reduce-on-plateau
(x0.1 after 10 epochs without a lower validation loss) on 3 centre clips per test video, 200
epochs; the model after the last epoch is tested: every video's non-overlapping 16-frame clips
(centre crop), softmax averaged over the clips, video top-1 (``jaxeq.data.video``, evaluator
``video``).

Differences, on purpose: PyTorch's SGD with dampening 0.9 keeps a momentum buffer of
``0.9 buf + 0.1 g`` after its first step, which is this trainer's undampened SGD at lr 0.01 (the
official first step alone is ten times larger); inputs are ImageNet-normalised by the trainer
(official: the ActivityNet mean subtracted on the 0-255 scale, no std; BatchNorm follows the
stem conv either way).

- ``full`` (default): UCF101 split 1, tfds ``ucf101/ucf101_1`` (prepared by the user with
  ``tfds build ucf101/ucf101_1 --file_format=array_record``, read without TensorFlow from
  ``--config.train.data.kwargs.data_dir``, default ``$TFDS_DATA_DIR``) or frame folders with the
  official split files (``--config.train.data.kwargs.root=DIR``); resnet3d_18 /
  34 / 50, same vs full (spatial F-Conv: the paper's rows) and full_temporal (the authors'
  later spatio-temporal F-Conv, the README's extra; the paper reports it for ResNet-18 on
  UCF101 only). An accelerator's job: 9 cells of 200 epochs.

      jaxeq run action_recognition --workdir runs/e5_ucf101 \\
          --config.train.data.kwargs.root=/data/ucf101/jpg

- ``full_hmdb51``: the same on HMDB51 split 1 (frame folders and ``*_test_split1.txt``):

      jaxeq run action_recognition:full_hmdb51 --workdir runs/e5_hmdb51 \\
          --config.train.data.kwargs.root=/data/hmdb51/jpg

- ``cpu``: the CPU analog, NOT UCF101: ``moving_shapes`` (8 motion classes, the object's
  position independent of the class), a 3D ResNet-18 narrowed to width ``CPU_WIDTH``, same vs
  full, 3 seeds; the official recipe scaled down (module constants), video top-1 on the test
  videos' clips.

      jaxeq run action_recognition:cpu --workdir runs/e5_cpu

  Its wall time and results: experiments/RESULTS.md (CPU analogs section).

- ``quick``: a pipeline smoke test on a few tiny moving-shapes videos (one seed, one epoch).

      jaxeq run action_recognition:quick --workdir runs/e5_quick
"""
import ml_collections

from jaxeq.data.moving_shapes import CLASSES
from jaxeq.experiments.configs.recipes import experiment_config, padding_defs, quiet_cpu_run

VARIANTS = ("quick", "cpu", "full", "full_hmdb51")
# official lr 0.1 with dampening 0.9 = undampened lr 0.01 after the first step (docstring)
OFFICIAL_LR = 0.1 * (1 - 0.9)


def official_recipe(t: ml_collections.ConfigDict) -> None:
    """SGD momentum 0.9 wd 1e-3 at the dampened lr's equivalent, reduce-on-plateau x0.1 after
    10 epochs without a lower val loss (PyTorch's relative threshold 1e-4), 200 epochs, batch 32."""
    t.optimizer.name = "sgd"
    t.optimizer.lr = OFFICIAL_LR
    t.optimizer.momentum = 0.9
    t.optimizer.weight_decay = 1e-3
    t.schedule.name = "plateau"
    t.schedule.factor = 0.1
    t.schedule.patience = 10
    t.schedule.threshold = 1e-4
    t.best_by = "val_loss"
    t.epochs = 200
    t.batch_size = 32
    t.eval_batch_size = 16          # the official validation loader's batch
    t.dtype = "float32"
    t.log_every_steps = 50
    t.checkpoint_every_steps = 1000


def get_config(arg=None):
    c = experiment_config("action_recognition", arg,
                          "E5 Action recognition: video top-1 of 3D ResNets from scratch", VARIANTS)
    t = c.train
    official_recipe(t)
    hmdb = c.variant == "full_hmdb51"
    t.model.name = "resnet3d_18"
    t.model.kwargs = {"num_classes": 51 if hmdb else 101}
    t.data.name = "hmdb51" if hmdb else "ucf101"
    t.data.kwargs = {"root": None, "splits_dir": None, "split_id": 1}
    if not hmdb:
        t.data.kwargs.data_dir = None   # tfds data_dir (when root is not given)
    t.data.train_split = "train"
    t.data.val_split = "val"        # 3 centre clips per test video: the plateau's val loss
    t.data.test_splits = []         # video-level test by the evaluator
    t.seed = 1                      # the official manual_seed

    c.archs = ("resnet3d_18", "resnet3d_34", "resnet3d_50")
    c.variants = ("same", "full", "full_temporal")
    c.variant_defs = padding_defs(same=("same", "zeros"), full=("full", "zeros"))
    # the authors' spatio-temporal F-Conv (models/resnet_fconv_tem.py): FCONV_TEMPORAL
    c.variant_defs["full_temporal"] = {"model": {"kwargs": {
        "padding": "full", "fill": "zeros", "temporal_padding": "full",
        "temporal_stem_stride": 2}}}
    c.paper_key = {"same": "same", "full": "full", "full_temporal": "full_temporal"}
    c.paper_dataset = "hmdb51" if hmdb else "ucf101"
    c.seeds = (1,)
    c.metrics = {}
    c.eval = ml_collections.ConfigDict()
    c.eval.kind = "video"
    c.eval.split = "test"
    c.eval.data_kwargs = {}
    c.eval.batch_size = 32
    c.eval.models = ("final",)      # the official run tests the model it ends with
    c.headline = "video_top1_final"
    c.notes = (
        f"{'HMDB51' if hmdb else 'UCF101'} split 1, 3D ResNets from scratch; video top-1 of "
        "the model after the last epoch (clips of 16 frames at 112, softmax averaged over each "
        "test video's non-overlapping clips), as the official test.",
        "SGD lr 0.01 undampened = the official lr 0.1 with dampening 0.9 after its first step; "
        "ImageNet input normalisation (official: ActivityNet mean, no std).",
    )
    if c.variant == "cpu":
        _cpu(c, t)
    if c.variant == "quick":
        _quick(c, t)
    return c


CPU_WIDTH = 8          # resnet3d_18 first-stage width of the cpu variant (Hara: 64)
CPU_SIZE = 16          # frame side of the moving shapes (official clips: 112)
CPU_FRAMES = 16        # frames per video
CPU_DURATION = 8       # frames per clip (official: 16)
CPU_EPOCHS = 30
CPU_BATCH = 16
# chosen on seed 0's validation clips from {0.02, 0.05}: both paddings pick 0.02
# (experiments/results/e5_cpu_lr_choice)
CPU_LR = 0.02
CPU_PER_CLASS = {"train": 32, "val": 8, "test": 16}


def _analog(c, t, *, per_class: dict, epochs: int, width: int) -> None:
    """The moving-shapes analog (cpu and quick)."""
    t.model.name = "resnet3d_18"
    t.model.kwargs = {"width": width, "num_classes": len(CLASSES)}
    t.data.name = "moving_shapes"
    t.data.kwargs = {"frames": CPU_FRAMES, "size": CPU_SIZE, "duration": CPU_DURATION}
    # val: the analog has its own val videos (the official run validates on its test videos)
    t.data.val_split = "val"
    t.data.test_splits = []
    t.data.seed = None
    t.data.kwargs.per_class = dict(per_class)   # videos per class of each split
    t.epochs = epochs
    t.optimizer.lr = CPU_LR
    t.batch_size = CPU_BATCH
    t.eval_batch_size = 32
    # the official patience (10 epochs): a scaled one (1 of 10) cut the lr on val-loss noise
    t.dtype = "float32"
    quiet_cpu_run(t)
    c.archs = ("resnet3d_18",)
    c.variants = ("same", "full")
    c.pairs = (("full", "same"),)
    c.eval.batch_size = 32


def _cpu(c, t) -> None:
    _analog(c, t, per_class=CPU_PER_CLASS, epochs=CPU_EPOCHS,
            width=CPU_WIDTH)
    c.seeds = (0, 1, 2)
    c.notes = (
        "CPU variant: moving_shapes (8 motion classes: 4 translations, 2 rotations, grow, "
        "shrink; the object's mid-video position drawn independently of the class), NOT "
        "UCF101 / HMDB51: the paper's numbers beside ours are another data set.",
        f"3D ResNet-18 at width {CPU_WIDTH} (Hara: 64) on {CPU_FRAMES}-frame videos of "
        f"{CPU_SIZE}x{CPU_SIZE}, clips of {CPU_DURATION} frames at a random temporal position "
        f"(official sampling, no spatial augmentation: a flip would swap classes); "
        f"{CPU_PER_CLASS['train']} train, {CPU_PER_CLASS['val']} val, {CPU_PER_CLASS['test']} "
        f"test videos per class; {CPU_EPOCHS} epochs, batch {CPU_BATCH}, SGD lr {CPU_LR:g} "
        f"(chosen on seed 0's val clips, see RESULTS.md) momentum 0.9 wd 1e-3, "
        f"reduce-on-plateau x0.1 after 10 epochs without a lower val loss (as the official).",
        "video_top1: the final model's softmax averaged over each test video's non-overlapping "
        "clips. Paired differences full - same: per seed, mean over seeds with a 95% Student "
        "t-interval (sample std, ddof=1).",
    )


def _quick(c, t) -> None:
    _analog(c, t, per_class={"train": 2, "val": 1, "test": 1}, epochs=1, width=4)
    t.batch_size = 8
    t.eval_batch_size = 8
    c.eval.batch_size = 8
    c.seeds = (0,)
    c.notes = ("QUICK variant (CPU): a pipeline check on a few tiny moving-shapes videos; NOT "
               "UCF101, not comparable with the paper's numbers.",)
