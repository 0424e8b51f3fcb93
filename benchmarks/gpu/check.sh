#!/usr/bin/env bash
# Run THERE (the GPU machine of the `device` tool, repository root, with carry [".gpu"] filled by
# benchmarks/gpu/prepare.sh right before): every GPU item of the speed issue in one command of at
# most ~7 minutes (the stage limits below plus ~40 s of set-up), which leaves a 15-minute device
# budget room for one shorter rerun.
#
#   1. the machine: GPU, driver, torch, CUDA
#   2. trainlab's missing dependencies from .gpu/wheels into /tmp/site; trainlab from the tree
#      (PYTHONPATH, nothing installed)
#   3. the test suite with runtime.device "auto" = cuda (pytest-xdist, 8 workers, -vv: a line per
#      test, so a cut run still names its failures); the tests that fork trainlab processes first,
#      with CUDA hidden (a process that has used CUDA cannot fork one that trains)
#   4. overhead: trainlab vs a hand-written loop on the GPU (MLP, Adam, b64/b512)
#   5. speedrun side by side: trainlab's speedrun config vs benchmarks/airbench_reference.py, bf16;
#      5b. the same steps under torch.profiler (benchmarks/speedrun_profile.py): ops, host syncs a step
#   6. the reference alone, 14 epochs: test accuracy (TTA) and training time
#   7. trainlab train examples/cifar10_speedrun.yaml on the GPU (bf16, whole 1,000-row batches,
#      channels_last): a) 14 epochs with --target val_accuracy=0.91, b) 100 steps with
#      runtime.compile: true (per-epoch times printed beside a's), c) 30 epochs with --target 0.94
#
# Each stage has its own time limit (seconds; override as e.g. TESTS_S=60) and the next starts
# whatever the last one did; ONLY="4 7b" runs only those stages (and 1-2), for a rerun; TESTS="tests/test_x.py
# ..." makes stage 3 run those files alone (on the GPU); SIDE_STEPS/SIDE_CHUNK set stage 5's steps (40, 5),
# SIDE_FLAGS=--no-clip times trainlab without the config's gradient clipping (equal work: the reference has none). Everything
# printed goes to $OUT/check.log, the pytest logs to $OUT/tests_forked.log and $OUT/tests.log, the
# benchmarks' result files (*_cuda.json) and two runs' summaries to $OUT: 8 files, the device tool's
# limit. Usage (device tool): command "bash benchmarks/gpu/check.sh", carry [".gpu"], timeout_s 480.
# A dry run of the wiring on a CPU machine: PYTHON=.venv/bin/python SKIP_INSTALL=1 DEVICE=cpu
# PRECISION=fp32 with short limits (each stage starts, then is cut).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export TRAINLAB_BENCH_RESULTS="$OUT"  # benchmarks/evidence.py writes its result files there
KIT=.gpu
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
started=$(date +%s)
stage() { echo; echo "== $1 ($(( $(date +%s) - started )) s in)"; }
wanted() {  # ONLY="3 7b" runs those stages (1 and 2 always); unset: every stage
    [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]
}
epoch_times() {  # per-epoch training seconds of a run folder, from metrics.jsonl's elapsed_s
    [ -f "$1/metrics.jsonl" ] || { echo "  (no metrics.jsonl in $1)"; return 0; }
    "$PYTHON" - "$1" <<'PY' || true
import json, sys
records = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl") if '"train_loss"' in line]
last = 0.0
for r in records:
    print(f"  epoch {r['epoch']}: {r['elapsed_s'] - last:.2f} s, val_accuracy {r.get('val_accuracy', float('nan')):.4f}")
    last = r["elapsed_s"]
PY
}

main() {
stage "1. machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
nproc
echo "commit: $(cat "$KIT/commit" 2>/dev/null)"

stage "2. set-up"
if [ ! -d "$KIT/wheels" ] || [ ! -f "$KIT/datasets/train.tar.gz" ]; then
    echo "error: $KIT/wheels or $KIT/datasets is missing: run benchmarks/gpu/prepare.sh here first and carry .gpu"
    return 2
fi
if [ -z "${SKIP_INSTALL:-}" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$KIT"/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
fi
TRAINLAB_GIT_COMMIT="$(cat "$KIT/commit" 2>/dev/null)"
export TRAINLAB_GIT_COMMIT
TRAINLAB=("$PYTHON" -c 'import sys; from trainlab.cli import main; sys.exit(main())')  # the CLI, no install
"$PYTHON" -c "import trainlab, pydantic, optuna, plotly; print('trainlab', trainlab.__version__, 'imports')" || return 3
mkdir -p /tmp/cifar10-jpg
for part in train test; do tar -xzf "$KIT/datasets/$part.tar.gz" -C /tmp/cifar10-jpg; done
DATA=(--data /tmp/cifar10-jpg --cache-dir /tmp/trainlab-cache)
GPU_SET=(--set data.path=/tmp/cifar10-jpg --set data.cache_dir=/tmp/trainlab-cache --set data.workers=8
         --set runtime.device="$DEVICE" --set runtime.precision="$PRECISION" --set strategy.batch_size=1000
         --set strategy.grad_accum_steps=1 --set output.progress=off --set strategy.time_budget_s=null)

if wanted 3; then
stage "3. tests on $DEVICE (limits ${FORKED_S:=70} + ${TESTS_S:=110} s; the whole logs in tests*.log)"
parallel=()
"$PYTHON" -c "import xdist" 2>/dev/null && parallel=(-n "${WORKERS:-8}")  # pytest-xdist is in the GPU image
# a) the tests that fork trainlab processes, with CUDA hidden: PyTorch's autograd threads do not survive a
#    fork of a process that has used CUDA (tests/forked_runs.py skips them there); their configs pin the CPU
forked=$(grep -l "forked_runs" tests/test_*.py)
if [ -z "${TESTS:-}" ]; then  # TESTS="tests/test_x.py ...": those files alone, in b)
    CUDA_VISIBLE_DEVICES="" timeout -k 15 "$FORKED_S" "$PYTHON" -m pytest -vv -p no:cacheprovider "${parallel[@]}" \
        --maxfail=40 $forked > "$OUT/tests_forked.log" 2>&1
    echo "pytest (forking tests, CUDA hidden) exit $?"
    grep -E "FAILED|ERROR" "$OUT/tests_forked.log" | head -20
    tail -2 "$OUT/tests_forked.log"
fi
# b) every other test on the GPU (runtime.device auto = cuda); cuBLAS's deterministic workspace from the
#    start, for the tests that ask for runtime.deterministic after the process has used CUDA
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
ignored=()
for file in $forked; do ignored+=(--ignore "$file"); done
timeout -k 15 "$TESTS_S" "$PYTHON" -m pytest -vv -p no:cacheprovider "${parallel[@]}" --maxfail=40 "${ignored[@]}" ${TESTS:-tests} \
    > "$OUT/tests.log" 2>&1
echo "pytest exit $?"
grep -E "FAILED|ERROR" "$OUT/tests.log" | head -40
tail -5 "$OUT/tests.log"
fi

if wanted 4; then
stage "4. overhead on $DEVICE (limit ${OVERHEAD_S:=60} s)"
timeout -k 15 "$OVERHEAD_S" "$PYTHON" benchmarks/overhead.py --device "$DEVICE" --epochs 1
fi

if wanted 5; then
stage "5. speedrun side by side on $DEVICE, ${SIDE_STEPS:=40} steps in chunks of ${SIDE_CHUNK:=5} (limit ${SIDE_S:=45} s)"
timeout -k 15 "$SIDE_S" "$PYTHON" benchmarks/cifar_speedrun.py --device "$DEVICE" --precision "$PRECISION" \
    "${DATA[@]}" --steps "$SIDE_STEPS" --chunk "$SIDE_CHUNK" --warmup 5 ${SIDE_FLAGS:-}
fi

if wanted 5b; then
stage "5b. speedrun profile on $DEVICE (limit ${PROFILE_S:=45} s)"
timeout -k 15 "$PROFILE_S" "$PYTHON" benchmarks/speedrun_profile.py --device "$DEVICE" --precision "$PRECISION" \
    "${DATA[@]}" --steps 10 --warmup 5 --rows 12
fi

if wanted 6; then
stage "6. reference alone, 14 epochs on $DEVICE (limit ${REFERENCE_S:=40} s)"
timeout -k 15 "$REFERENCE_S" "$PYTHON" benchmarks/cifar_speedrun.py --device "$DEVICE" --precision "$PRECISION" \
    "${DATA[@]}" --reference-only --epochs 14 --eval-each-epoch
fi

if wanted 7a; then
stage "7a. trainlab speedrun on $DEVICE, 14 epochs (limit ${TRAIN_S:=50} s)"
timeout -k 15 "$TRAIN_S" "${TRAINLAB[@]}" train examples/cifar10_speedrun.yaml "${GPU_SET[@]}" \
    --set strategy.epochs=14 --out /tmp/runs/speedrun14 --overwrite --target val_accuracy=0.91
epoch_times /tmp/runs/speedrun14
cp /tmp/runs/speedrun14/summary.json "$OUT/speedrun14_summary.json" 2>/dev/null
fi

if wanted 7b; then
stage "7b. 100 steps with runtime.compile: true (limit ${COMPILE_S:=60} s; the compile counts in epoch 1)"
timeout -k 15 "$COMPILE_S" "${TRAINLAB[@]}" train examples/cifar10_speedrun.yaml "${GPU_SET[@]}" \
    --set runtime.compile=true --set strategy.max_steps=100 --out /tmp/runs/speedrun_compiled --overwrite
epoch_times /tmp/runs/speedrun_compiled
fi

if wanted 7c; then
stage "7c. trainlab speedrun on $DEVICE, ${LONG_EPOCHS:=30} epochs toward 94% (limit ${LONG_S:=60} s)"
timeout -k 15 "$LONG_S" "${TRAINLAB[@]}" train examples/cifar10_speedrun.yaml "${GPU_SET[@]}" \
    --set strategy.epochs="$LONG_EPOCHS" --out /tmp/runs/speedrun_long --overwrite --target val_accuracy=0.94
epoch_times /tmp/runs/speedrun_long
cp /tmp/runs/speedrun_long/summary.json "$OUT/speedrun_long_summary.json" 2>/dev/null
fi

stage "done"
}

main 2>&1 | tee "$OUT/check.log"  # a pipe, not exec > >(tee): the log's last lines are written before exit
