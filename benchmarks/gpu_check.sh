#!/usr/bin/env bash
# The GPU check of issue 13, one script that finishes in under 5 minutes on one GPU:
#   1. the batched vector env's env-steps/s at B = 1024 .. 65,536 against SpepEnv (bench_batched.py;
#      no new size once ENV_BUDGET seconds are spent),
#   2. MaskablePPO training env-steps/s on the batched core with the policy on the GPU, against
#      today's scalar spep train (bench_train.py), cut off after TRAIN_TIMEOUT seconds.
# Usage: bash benchmarks/gpu_check.sh            (DEVICE=cuda; prints, and copies into $OUT if set)
#        DEVICE=cpu SIZES=1,64 TRAIN_RUNS=scalar:2,batched:8 TIMESTEPS=512 bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
SIZES=${SIZES:-1024,8192,65536}
ENV_BUDGET=${ENV_BUDGET:-120}
TRAIN_RUNS=${TRAIN_RUNS:-scalar:4,batched:1024,batched:4096}
TIMESTEPS=${TIMESTEPS:-65536}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-150}
LOG=${OUT:-.}/gpu_check.txt
{
  date -u +"%Y-%m-%d %H:%M UTC"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "== 1. batched env (device $DEVICE, B = $SIZES)"
  timeout $((ENV_BUDGET + 120)) "$PY" benchmarks/bench_batched.py --device "$DEVICE" --sizes "$SIZES" --budget "$ENV_BUDGET"
  echo "rc=$?"
  echo "== 2. training (device $DEVICE, runs $TRAIN_RUNS, $TIMESTEPS env-steps each)"
  timeout "$TRAIN_TIMEOUT" "$PY" benchmarks/bench_train.py --device "$DEVICE" --runs "$TRAIN_RUNS" --timesteps "$TIMESTEPS"
  echo "rc=$? (124: cut off after ${TRAIN_TIMEOUT} s; the runs printed before it count)"
} 2>&1 | tee "$LOG"
