"""E4b Patch matching (data efficiency): does F-Conv HardNet need fewer training triplets?

HardNet (S-Conv: the authors' HardNet.py; F-Conv: Kayhan & van Gemert's HardNet_fconv.py,
``jaxeq.models.hardnet``) trained with the official recipe (``run_me_fconv.sh``: train on
Yosemite, no flip / rotation; HardNet loss with the hardest in-batch negative, margin 1, anchor
swap; SGD lr 10 momentum 0.9 dampening 0.9 wd 1e-4, linear decay to 0; batch 256; 10 epochs
over the ``n_triplets`` pairs drawn once), for 25k / 50k / 100k / 250k / 500k triplets; FPR at
95% recall on the 100k pairs of Liberty and Notre Dame, with the network after its last epoch.
Trained by :mod:`jaxeq.experiments.patch_matching_train` (``config.runner``).

- ``full`` (default): Brown / PhotoTour from a local folder (``ROOT/liberty``,
  ``ROOT/notredame``, ``ROOT/yosemite``, each with its patchNNNN.bmp, info.txt and
  m50_100000_100000_0.txt; nothing is downloaded), an accelerator's job:

      jaxeq run patch_matching --workdir runs/e4b --config.train.data.root=/data/phototour

- ``cpu``: the CPU analog, NOT PhotoTour (``jaxeq.data.patch_pairs``: views of places in the
  photographs embedded in scikit-image under random affine and illumination changes; test
  pairs from four photographs never trained on), same vs full, 3 seeds, 64 / 128 / 256
  training triplets (the paper's axis scaled down to what 2 CPU cores train in minutes),
  each trained for the official 10 epochs with its linear decay to 0; the paper's PhotoTour
  curve sits in its own table and on its own axis:

      jaxeq run patch_matching:cpu --workdir runs/e4b_cpu

  Its wall time and results: experiments/RESULTS.md (CPU analogs section).

- ``quick``: seconds, a smoke test of the whole path (2 tiny cells, a few steps):

      jaxeq run patch_matching:quick --workdir runs/e4b_quick
"""

from jaxeq.experiments.configs.recipes import experiment_config, padding_defs

VARIANTS = ("quick", "cpu", "full")
RUNNER = "jaxeq.experiments.patch_matching_train"


def get_config(arg=None):
    from jaxeq.experiments.patch_matching_train import default_train

    c = experiment_config("patch_matching", arg, "E4b Patch matching: FPR95 vs training triplets",
                          VARIANTS)
    c.runner = RUNNER
    c.train = default_train()
    c.variants = ("same", "full")
    c.variant_defs = padding_defs(same=("same", "zeros"), full=("full", "zeros"))
    c.paper_key = {"same": "same", "full": "full"}
    c.triplets = (25000, 50000, 100000, 250000, 500000)
    c.seeds = (0,)
    c.pairs = (("full", "same"),)
    c.notes = (
        "Paper's numbers read off its figure (FPR95 as a percentage here).",
        "Training: Yosemite, the official HardNet_fconv.py recipe as run_me_fconv.sh runs it "
        "(batch 256, 10 epochs, SGD lr 10 with linear decay, no flip/rotation); FPR95 on the 100k "
        "pairs of Liberty and Notre Dame (fpr95 = their mean) after the last epoch.",
    )
    if c.variant == "cpu":
        _cpu(c)
    elif c.variant == "quick":
        _cpu(c)
        c.train.data.points, c.train.data.views, c.train.data.test_points = 40, 2, 40
        c.train.batch_size = 16
        c.train.epochs = 1
        c.triplets = (32,)
        c.variants = ("same", "full")
        c.seeds = (0,)
        c.notes = ("QUICK variant (smoke test): tiny analog data, a few steps; NOT PhotoTour, "
                   "not comparable with the paper's numbers.",)
    return c


CPU_POINTS, CPU_VIEWS, CPU_TEST_POINTS = 300, 3, 150
CPU_BATCH = 32
CPU_EPOCHS = 10     # the official count: each size trained to the end of the recipe


def _cpu(c) -> None:
    """The CPU analog (module docstring, ``cpu``)."""
    t = c.train
    t.data = {"name": "patch_pairs", "root": "", "train_scene": "", "test_scenes": ("test",),
              "points": CPU_POINTS, "views": CPU_VIEWS, "test_points": CPU_TEST_POINTS,
              "test_seed": 0}
    t.batch_size = CPU_BATCH
    t.epochs = CPU_EPOCHS
    t.eval_batch_size = 200
    t.checkpoint = False
    # Small: one F-Conv HardNet step costs several times an S-Conv one on XLA:CPU (its 8x8
    # head runs on a 14x14 map, 49 times the S-Conv head's work, and its weight gradient takes
    # a slow XLA:CPU path), and the whole variant is sized for minutes on 2 cores.
    c.triplets = (64, 128, 256)
    c.seeds = (0, 1, 2)
    c.notes = (
        "CPU variant: patch_pairs (views of places in 10 scikit-image photographs under random "
        "rotation +-20 deg, scale 0.8-1.25, anisotropy +-10%, shift +-2 px, gain 0.7-1.3, bias "
        "+-25, noise 3 levels; NOT PhotoTour). Test: 150 matching + 150 non-matching pairs from "
        "4 other photographs (camera, coins, moon, coffee), the same set for every cell. The "
        "paper's PhotoTour curve is another data set: its own table and axis.",
        f"Training pool: {CPU_POINTS} places x {CPU_VIEWS} views (per seed); the official "
        f"recipe (HardNet loss, SGD lr 10 momentum 0.9 dampening 0.9 wd 1e-4, linear decay to "
        f"0) at batch {CPU_BATCH}, {CPU_EPOCHS} epochs over the drawn triplets; FPR95 after "
        f"the last epoch.",
        "Paired differences full - same: per seed, mean over seeds with a 95% Student "
        "t-interval (sample std, ddof=1).",
    )
