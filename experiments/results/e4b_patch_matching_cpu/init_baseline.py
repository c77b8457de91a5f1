"""FPR95 of untrained HardNets (the cells' initialisations) on the cpu variant's test pairs.

python experiments/results/e4b_patch_matching_cpu/init_baseline.py > experiments/results/e4b_patch_matching_cpu/init_baseline.txt
"""
from jaxeq.experiments import load_config
from jaxeq.experiments import patch_matching_train as pm
from jaxeq.train import triplet
cfg = load_config("patch_matching:cpu")
for v in ("same", "full"):
    for s in (0, 1, 2):
        t = pm.cell_train(cfg, {"variant": v, "triplets": 64, "seed": s})
        (_, _), tests = pm.load_data(t)
        model, tx, step, describe = pm._build(t)
        st = triplet.create_state(model, tx, s, pm.PATCH_SHAPE)
        p, m = tests["test"]
        print(v, s, round(pm.fpr95_percent(describe, st, p, m, 200), 2), flush=True)
