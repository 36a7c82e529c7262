#!/usr/bin/env bash
# Evaluate one or more checkpoints on the spatial benchmarks (any registered), one process per device.
#
#   eval/run_eval.sh --model PATH [--model NAME=PATH ...] \
#       --benchmarks "VSI-Bench CV-Bench" | all \
#       --data-root DIR | --data-root NAME=DIR ... \
#       --num-processes N --prompt-kind thinking|direct|official --num-frames 32 \
#       --min-pixels 12544 --max-pixels 401408 --batch-size 4 --max-new-tokens 1024 \
#       --output-dir DIR --scorer official|spatialladder [--limit N] [--skip-missing-media]
#       [--blind]   (every image/frame grey, same size: the text-only-prior control)
#
# Launch: CUDA visible -> `accelerate launch --num_processes N [--multi_gpu]` (one rank per GPU);
# CPU only with N > 1 -> `torchrun --standalone --nproc_per_node N` (accelerate's --cpu launcher
# starts a single process, so it cannot shard); N = 1 -> plain python. Override with
# LAUNCHER=accelerate|torchrun|python. All other arguments go to eval/run_eval.py unchanged;
# rank 0 merges, scores and writes OUTPUT/report.{md,csv}. Ranks die with the launcher, and a second
# run into the same --output-dir refuses (naming the live run's pid; its ranks exit 3) until the first is gone.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON="python"; fi
fi

NPROC=1
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --num-processes) NPROC="$2"; shift 2 ;;
    --num-processes=*) NPROC="${1#*=}"; shift ;;
    -h|--help) exec "$PYTHON" "$HERE/run_eval.py" --help ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "run_eval.sh: --num-processes must be a positive integer, got '$NPROC'" >&2; exit 2
fi

LAUNCHER="${LAUNCHER:-}"
if [[ -z "$LAUNCHER" ]]; then
  NGPU="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
  if [[ "$NGPU" -gt 0 ]]; then
    LAUNCHER=accelerate
    if [[ "$NPROC" -gt "$NGPU" ]]; then
      echo "run_eval.sh: --num-processes $NPROC > $NGPU visible GPU(s)" >&2; exit 2
    fi
  elif [[ "$NPROC" -gt 1 ]]; then
    LAUNCHER=torchrun
  else
    LAUNCHER=python
  fi
fi

# The launcher is exec'd below, so it keeps this pid: each rank dies with it (spatialladder.evaluation.ranks).
export SPATIALLADDER_LAUNCHER_PID=$$

# Ranks of one node: a free port per job so concurrent evaluations do not collide on 29500.
PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

case "$LAUNCHER" in
  accelerate)
    MULTI=(); [[ "$NPROC" -gt 1 ]] && MULTI=(--multi_gpu)
    exec "$PYTHON" -m accelerate.commands.launch --num_processes "$NPROC" "${MULTI[@]}" --num_machines 1 \
      --mixed_precision no --dynamo_backend no --main_process_port "$PORT" \
      "$HERE/run_eval.py" --num-processes "$NPROC" "${ARGS[@]}" ;;
  torchrun)
    exec "$PYTHON" -m torch.distributed.run --nnodes 1 --nproc_per_node "$NPROC" \
      --master_addr 127.0.0.1 --master_port "$PORT" \
      "$HERE/run_eval.py" --num-processes "$NPROC" "${ARGS[@]}" ;;
  python)
    if [[ "$NPROC" -gt 1 ]]; then echo "run_eval.sh: LAUNCHER=python runs one process" >&2; fi
    exec "$PYTHON" "$HERE/run_eval.py" --num-processes 1 "${ARGS[@]}" ;;
  *) echo "run_eval.sh: unknown LAUNCHER '$LAUNCHER' (accelerate|torchrun|python)" >&2; exit 2 ;;
esac
