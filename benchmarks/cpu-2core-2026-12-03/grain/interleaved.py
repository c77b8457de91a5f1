"""Old (hand-written) vs grain pipeline, interleaved in one process: CPU-seconds per image.

python benchmarks/cpu-2core-2026-12-03/grain/interleaved.py [rounds]
Folder of 128 generated JPEGs (make_jpegs), train augmentation, batch 32, one epoch per
measurement, decode threads 1 and 2; red_green train, batch 64, 5 epochs (an in-memory source:
grain builds its batches in the caller's thread), and the same arrays marked not in memory
(loaded on grain's thread). Prints per-round
images per CPU-second and the medians.
"""
import copy, importlib.util, json, os, sys, tempfile, time
import numpy as np
import jaxeq.data as data
from jaxeq.data.folder import Folder
from jaxeq.data.throughput import make_jpegs

# the hand-written pipeline: git show f520312:jaxeq/data/pipeline.py > pipeline_old.py (beside this file)
spec = importlib.util.spec_from_file_location("pipeline_old", os.path.join(os.path.dirname(__file__), "pipeline_old.py"))
old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
impl = {"old": old.batches, "grain": data.batches}


def per_cpu(f, src, bs, epochs):
    c, n = time.process_time(), 0
    for e in range(epochs):
        for b in f(src, bs, shuffle=True, seed=0, epoch=e):
            n += int(b["mask"].sum())
    return n / (time.process_time() - c)


rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
res = {}
with tempfile.TemporaryDirectory() as d:
    for k, jpg in enumerate(make_jpegs(128, seed=0)):
        os.makedirs(f"{d}/c{k % 4}", exist_ok=True)
        open(f"{d}/c{k % 4}/{k}.jpg", "wb").write(jpg)
    cases = {f"folder_{w}_threads": (Folder(d, "train", 0, val_fraction=0.0, test_fraction=0.0, workers=w), 32, 1) for w in (1, 2)}
    cases["red_green"] = (data.get("red_green", split="train", seed=0), 64, 5)
    # the same arrays marked not in memory: grain loads them on its loader thread
    handed = copy.copy(cases["red_green"][0])
    handed.in_memory = False
    cases["red_green_loader_thread"] = (handed, 64, 5)
    for name, (src, bs, ep) in cases.items():
        for f in impl.values():
            per_cpu(f, src, bs, 1)  # warm-up
        for r in range(rounds):
            for key, f in impl.items():
                res.setdefault(f"{name}/{key}", []).append(round(per_cpu(f, src, bs, ep), 1))
for k, v in res.items():
    print(k, "median", np.median(v), "rounds", v)
print("loadavg", os.getloadavg())
