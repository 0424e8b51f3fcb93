#!/usr/bin/env bash
# Run THERE (the GPU machine of the `device` tool, repository root, with carry [".gpu"] filled by
# benchmarks/gpu/prepare.sh): every GPU item of the speed issue in one command of at most ~9.5 minutes (stage limits below).
#
#   1. the machine: GPU, driver, torch, CUDA
#   2. trainlab's dependencies from .gpu/wheels, trainlab itself --no-deps
#   3. the test suite with runtime.device "auto" = cuda (pytest-xdist, 8 workers)
#   4. overhead: trainlab vs a hand-written loop on the GPU (MLP, Adam, b64/b512)
#   5. speedrun side by side: trainlab's speedrun config vs benchmarks/airbench_reference.py, bf16
#   6. the reference alone, 14 epochs: test accuracy (TTA) and training time
#   7. trainlab train examples/cifar10_speedrun.yaml on the GPU (bf16, whole 2,000-row batches,
#      channels_last) with --target val_accuracy=0.91, the same with runtime.compile: true, then a
#      longer run with --target 0.94
#
# Each stage has its own time limit and the next starts whatever the last one did; everything it
# prints goes to $OUT/check.log, the pytest log to $OUT/tests.log, the benchmarks' result files
# (*_cuda.json) and the runs' summaries to $OUT. Usage (device tool): command
# "bash benchmarks/gpu/check.sh", carry [".gpu"],
# timeout_s 590. Stage limits can be shortened with e.g. TESTS_S=120 (seconds). A dry run of the
# wiring on a CPU machine: PYTHON=.venv/bin/python SKIP_INSTALL=1 DEVICE=cpu PRECISION=fp32 with short
# limits (each stage starts, then times out).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
LOG="$OUT/check.log"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1
export TRAINLAB_BENCH_RESULTS="$OUT"  # benchmarks/evidence.py writes its result files there
KIT=.gpu
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
started=$(date +%s)
stage() { echo; echo "== $1 ($(( $(date +%s) - started )) s in)"; }

stage "1. machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
nproc

stage "2. install"
if [ ! -d "$KIT/wheels" ] || [ ! -f "$KIT/datasets/train.tar.gz" ]; then
    echo "error: $KIT/wheels or $KIT/datasets is missing: run benchmarks/gpu/prepare.sh here first and carry .gpu"
    exit 2
fi
if [ -z "${SKIP_INSTALL:-}" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$KIT"/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
fi
TRAINLAB_GIT_COMMIT="$(cat "$KIT/commit" 2>/dev/null)"
export TRAINLAB_GIT_COMMIT
TRAINLAB=("$PYTHON" -c 'import sys; from trainlab.cli import main; sys.exit(main())')  # the CLI, no install
"$PYTHON" -c "import trainlab, pydantic, optuna, plotly; print('trainlab', trainlab.__version__, 'imports')" || exit 3

mkdir -p /tmp/cifar10-jpg
for part in train test; do tar -xzf "$KIT/datasets/$part.tar.gz" -C /tmp/cifar10-jpg; done
DATA=(--data /tmp/cifar10-jpg --cache-dir /tmp/trainlab-cache)

stage "3. tests on $DEVICE (limit ${TESTS_S:=100} s; the whole log in tests.log)"
parallel=()
"$PYTHON" -c "import xdist" 2>/dev/null && parallel=(-n "${WORKERS:-8}")  # pytest-xdist is in the GPU image
timeout -k 15 "$TESTS_S" "$PYTHON" -m pytest -q -p no:cacheprovider "${parallel[@]}" --maxfail=40 tests > "$OUT/tests.log" 2>&1
echo "pytest exit $?"
tail -45 "$OUT/tests.log"

stage "4. overhead on $DEVICE (limit ${OVERHEAD_S:=45} s)"
timeout -k 15 "$OVERHEAD_S" "$PYTHON" benchmarks/overhead.py --device "$DEVICE" --epochs 2

stage "5. speedrun side by side on $DEVICE (limit ${SIDE_S:=60} s)"
timeout -k 15 "$SIDE_S" "$PYTHON" benchmarks/cifar_speedrun.py --device "$DEVICE" --precision "$PRECISION" "${DATA[@]}" --steps 40 --chunk 5 --warmup 5

stage "6. reference alone, 14 epochs on $DEVICE (limit ${REFERENCE_S:=60} s)"
timeout -k 15 "$REFERENCE_S" "$PYTHON" benchmarks/cifar_speedrun.py --device "$DEVICE" --precision "$PRECISION" "${DATA[@]}" --reference-only --epochs 14

GPU_SET=(--set data.path=/tmp/cifar10-jpg --set data.cache_dir=/tmp/trainlab-cache --set data.workers=8
         --set runtime.device="$DEVICE" --set runtime.precision="$PRECISION" --set strategy.batch_size=2000
         --set strategy.grad_accum_steps=1 --set output.progress=off)
stage "7a. trainlab speedrun on $DEVICE, 14 epochs (limit ${TRAIN_S:=75} s)"
timeout -k 15 "$TRAIN_S" "${TRAINLAB[@]}" train examples/cifar10_speedrun.yaml "${GPU_SET[@]}" --out /tmp/runs/speedrun14 --overwrite \
    --target val_accuracy=0.91
cp /tmp/runs/speedrun14/summary.json "$OUT/speedrun14_summary.json" 2>/dev/null

stage "7b. the same with runtime.compile: true (limit ${COMPILE_S:=90} s)"
timeout -k 15 "$COMPILE_S" "${TRAINLAB[@]}" train examples/cifar10_speedrun.yaml "${GPU_SET[@]}" --set runtime.compile=true \
    --out /tmp/runs/speedrun14_compiled --overwrite --target val_accuracy=0.91
cp /tmp/runs/speedrun14_compiled/summary.json "$OUT/speedrun14_compiled_summary.json" 2>/dev/null

stage "7c. trainlab speedrun on $DEVICE, ${LONG_EPOCHS:=30} epochs toward 94% (limit ${LONG_S:=80} s)"
timeout -k 15 "$LONG_S" "${TRAINLAB[@]}" train examples/cifar10_speedrun.yaml "${GPU_SET[@]}" --set strategy.epochs="$LONG_EPOCHS" \
    --out /tmp/runs/speedrun_long --overwrite --target val_accuracy=0.94
cp /tmp/runs/speedrun_long/summary.json "$OUT/speedrun_long_summary.json" 2>/dev/null

stage "done"
