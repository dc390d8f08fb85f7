#!/usr/bin/env bash
# The GPU check of issue 13, one script that finishes in under 5 minutes on one GPU:
#   1. the batched vector env's env-steps/s at B = 1024 .. 65,536 against SpepEnv (bench_batched.py;
#      no new size once ENV_BUDGET seconds are spent),
#   2. MaskablePPO training env-steps/s on the batched core with the policy on the GPU (SB3's loop,
#      --engine batched, and TorchRL's, --engine torchrl), against today's scalar spep train
#      (bench_train.py, the default hyperparameters), cut off after TRAIN_TIMEOUT seconds,
#   3. TorchRL's loop at GPU scale: SCALE_ENVS networks and GPU-sized minibatches (SCALE_HYPER:
#      other learning dynamics than the defaults, so its steps/s is not a like-for-like ratio),
#   4. spep train --engine torchrl on the device end to end: train, resume from its checkpoint,
#      evaluate the model on SpepEnv (the sb3 agent), cut off after RUN_TIMEOUT seconds,
#   5. the batched engine's studies on the device: spep evaluate on the device and on the CPU, the
#      rows compared (the same draws: any difference is the device's rounding), and a small
#      spep reproduce --device, cut off after STUDY_TIMEOUT seconds.
# Usage: bash benchmarks/gpu_check.sh            (DEVICE=cuda; prints, and copies into $OUT if set)
#        DEVICE=cpu SIZES=1,64 TRAIN_RUNS=scalar:2,batched:8,torchrl:8 TIMESTEPS=512 \
#          SCALE_ENVS=64 SCALE_TIMESTEPS=2048 SCALE_HYPER="n_steps=16 batch_size=512 n_epochs=1" \
#          RUN_ENVS=64 STUDY_RUNS=16 bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
SIZES=${SIZES:-1024,8192,65536}
ENV_BUDGET=${ENV_BUDGET:-65}
TRAIN_RUNS=${TRAIN_RUNS:-scalar:4,batched:4096,torchrl:4096}
TIMESTEPS=${TIMESTEPS:-32768}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-80}
SCALE_ENVS=${SCALE_ENVS:-16384}
SCALE_TIMESTEPS=${SCALE_TIMESTEPS:-524288}
SCALE_HYPER=${SCALE_HYPER:-n_steps=16 batch_size=65536 n_epochs=4}
SCALE_TIMEOUT=${SCALE_TIMEOUT:-60}
RUN_ENVS=${RUN_ENVS:-1024}
RUN_TIMEOUT=${RUN_TIMEOUT:-40}
STUDY_RUNS=${STUDY_RUNS:-512}
STUDY_TIMEOUT=${STUDY_TIMEOUT:-45}
LOG=${OUT:-.}/gpu_check.txt
{
  date -u +"%Y-%m-%d %H:%M UTC"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "== 1. batched env (device $DEVICE, B = $SIZES)"
  timeout $((ENV_BUDGET + 60)) "$PY" benchmarks/bench_batched.py --device "$DEVICE" --sizes "$SIZES" --budget "$ENV_BUDGET"
  echo "rc=$?"
  echo "== 2. training (device $DEVICE, runs $TRAIN_RUNS, $TIMESTEPS env-steps each)"
  timeout "$TRAIN_TIMEOUT" "$PY" benchmarks/bench_train.py --device "$DEVICE" --runs "$TRAIN_RUNS" --timesteps "$TIMESTEPS"
  echo "rc=$? (124: cut off after ${TRAIN_TIMEOUT} s; the runs printed before it count)"
  echo "== 3. TorchRL at scale (device $DEVICE, $SCALE_ENVS networks, --hyper $SCALE_HYPER)"
  hyper=(); for h in $SCALE_HYPER; do hyper+=(--hyper "$h"); done
  timeout "$SCALE_TIMEOUT" "$PY" benchmarks/bench_train.py --device "$DEVICE" --runs "torchrl:$SCALE_ENVS" --timesteps "$SCALE_TIMESTEPS" "${hyper[@]}"
  echo "rc=$? (124: cut off after ${SCALE_TIMEOUT} s)"
  echo "== 4. spep train --engine torchrl end to end (device $DEVICE, $RUN_ENVS networks)"
  run=$(mktemp -d)/torchrl-run
  SPEP=$(dirname "$PY")/spep
  timeout "$RUN_TIMEOUT" bash -c "
    '$SPEP' train --engine torchrl --device '$DEVICE' --n-envs $RUN_ENVS --hyper n_steps=4 --timesteps $((RUN_ENVS * 8)) --checkpoint-freq $((RUN_ENVS * 4)) --out '$run' &&
    '$SPEP' train --engine torchrl --device '$DEVICE' --n-envs $RUN_ENVS --hyper n_steps=4 --timesteps $((RUN_ENVS * 16)) --checkpoint-freq $((RUN_ENVS * 4)) --out '$run' --resume &&
    '$SPEP' evaluate --agent sb3 --param path='$run' --runs 2 --slots 200 --out '$run-eval'"
  echo "rc=$? (0: trained, resumed and evaluated; 124: cut off after ${RUN_TIMEOUT} s)"
  echo "== 5. spep evaluate / reproduce --engine batched (device $DEVICE against cpu, $STUDY_RUNS runs)"
  study=$(mktemp -d)
  timeout "$STUDY_TIMEOUT" bash -c "
    for d in '$DEVICE' cpu; do
      TIMEFORMAT=\"\$d: %R s\"; time '$SPEP' evaluate --engine batched --device \$d --agent random,spep-frequency --runs $STUDY_RUNS --slots 120 --no-progress --out '$study'/\$d.csv > /dev/null || exit 1
    done
    '$PY' -c \"
import pandas as pd
a, b = (pd.read_csv('$study/' + d + '.csv').drop(columns='wall_time_s') for d in ('$DEVICE', 'cpu'))
same = (a == b) | (a.isna() & b.isna())
print(f'rows equal on $DEVICE and cpu: {int(same.all(axis=1).sum())} of {len(a)}; largest success_rate difference {float((a.success_rate - b.success_rate).abs().max()):.2e}')
\" &&
    '$SPEP' reproduce --engine batched --device '$DEVICE' --agents random,spep-frequency --topologies erdos_renyi --runs 8 --slots 60 --no-sensitivity --no-figures --jobs 1 --no-progress --out '$study/reproduce' > /dev/null &&
    grep -o 'batched engine on [^,]*' '$study/reproduce/report.md' | head -1"
  echo "rc=$? (0: both evaluated and compared, and the study ran; 124: cut off after ${STUDY_TIMEOUT} s)"
} 2>&1 | tee "$LOG"
