#!/usr/bin/env bash
# Everything this GPU lease ran, as one command on the device machine (device tool `run`, with
# carry=[".whl"]; wheels the image lacks: grain, array_record, portpicker, ml_collections, and
# flax / optax / chex used only where the image's are older than pyproject's minimums).
# Each step has its own time cap inside TOTAL seconds; every output lands in $OUT as it comes.
# STEPS picks the steps (second call of the lease: STEPS="probe models" TOTAL=330); PROBE_ONLY
# and MODELS_ONLY narrow the bench rows (--only A,B); PROBE_S caps the probe step, MODELS_S is
# what it leaves for the models step; BREAKDOWN_CELLS picks engine_breakdown.py's cells.
# Steps: precision breakdown train host grouped trainprof probe models (the next lease:
# STEPS="grouped trainprof host probe" PROBE_ONLY="/layerwise/,/S16/,/S256/64/" TOTAL=540).
set -u
TOTAL=${TOTAL:-540}
STEPS=${STEPS:-"precision train probe models"}
PROBE_ONLY=${PROBE_ONLY:-}
MODELS_ONLY=${MODELS_ONLY:-resnet18/train}
PROBE_S=${PROBE_S:-300}
MODELS_S=${MODELS_S:-50}
want() { [[ " $STEPS " == *" $1 "* ]]; }
START=$(date +%s)
left() { echo $(( TOTAL - ($(date +%s) - START) )); }
cap() { local want=$1 l; l=$(( $(left) - ${2:-5} )); (( l < want )) && want=$l; (( want < 1 )) && want=1; echo $want; }
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:/tmp/site"
export JAX_COMPILATION_CACHE_DIR=/tmp/jcache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
python3 - <<'PY' || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/opt/*.whl
import flax, optax, chex
from importlib.metadata import version
v = lambda p: tuple(int(x) for x in version(p).split(".")[:3])
assert v("flax") >= (0, 12) and v("optax") >= (0, 2, 4) and v("chex") >= (0, 1, 90)
PY
echo "== env"; nvidia-smi -L; nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,utilization.gpu --format=csv
python3 -c "import jax, jaxlib, flax, optax, chex, torch, sys; print(sys.version.split()[0], 'jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'chex', chex.__version__, 'torch', torch.__version__, jax.devices())"

want precision && echo "== precision probe ($(left) s left)" &&
timeout "$(cap 70 400)" python3 benchmarks/gpu-h200-2026-12-04/precision_probe.py "$OUT/precision.json"

want breakdown && echo "== engine breakdown ($(left) s left)" &&
timeout "$(cap 150 $(( PROBE_S + MODELS_S )))" python3 benchmarks/gpu-h200-2026-12-04/engine_breakdown.py \
  "$OUT/breakdown.json" /tmp/prof

if want train; then
  echo "== train smoke: red_green quick, 1 seed, 2 paddings ($(left) s left)"
  timeout "$(cap 70 330)" python3 -m jaxeq run red_green:quick --workdir /tmp/rg "--config.seeds=(0,)" \
    "--config.variants=('same_zero','full_zero')" && cp /tmp/rg/results.json "$OUT/red_green_smoke.json"
  echo "== resume: the same command again keeps its cells ($(left) s left)"
  timeout "$(cap 25 300)" python3 -m jaxeq run red_green:quick --workdir /tmp/rg "--config.seeds=(0,)" \
    "--config.variants=('same_zero','full_zero')" | tail -3
fi

want host && echo "== host time of a warm analysis call ($(left) s left)" &&
timeout "$(cap 90 $(( PROBE_S + MODELS_S )))" python3 benchmarks/cpu-2core-2026-12-04/engine_host_overhead.py \
  "$OUT/host_overhead.json" 100

want grouped && echo "== layer table: alike outputs together or not ($(left) s left)" &&
git show cede433:jaxeq/analysis/engine.py > /tmp/engine_cede433.py 2>/dev/null;
timeout "$(cap 120 $(( PROBE_S + MODELS_S )))" python3 benchmarks/cpu-2core-2026-12-04/engine_grouped_ab.py same \
  $( [ -s /tmp/engine_cede433.py ] && echo /tmp/engine_cede433.py ) | tee "$OUT/grouped_ab.txt"

want trainprof && echo "== train step profile, resnet18 same and full ($(left) s left)" &&
timeout "$(cap 120 $(( PROBE_S + MODELS_S )))" python3 benchmarks/gpu-h200-2026-12-04/train_step_profile.py \
  "$OUT/train_profile.json" resnet18 112 32 /tmp/train_prof

want probe && echo "== bench probe ($(left) s left)" &&
timeout "$(cap $PROBE_S $MODELS_S)" python3 -m jaxeq bench probe --device gpu --repeats 5 ${PROBE_ONLY:+--only "$PROBE_ONLY"} \
  --json "$OUT/probe_gpu.json"

want models && echo "== bench models resnet18 train ($(left) s left)" &&
timeout "$(cap 120 3)" python3 -m jaxeq bench models --device gpu --only "$MODELS_ONLY" --repeats 5 \
  --json "$OUT/models_gpu.json"
echo "== done ($(left) s left)"
