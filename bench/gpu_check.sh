#!/usr/bin/env bash
# One-GPU check of the paths CPU CI cannot run (bf16 + FlashAttention-2 log-probs, bf16 SFT/GRPO
# steps, a 3B-shaped model's tokens/s and peak memory, ZeRO-3 on one GPU); prints a table.
# Needs this repo's venv (bash setup.sh); no download. Under 8 minutes on one recent NVIDIA GPU.
# Without CUDA it still runs its CPU-safe rows and marks the others "skipped: no CUDA".
#   bash bench/gpu_check.sh [--work DIR] [--only ROW ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PYTHON" bench/gpu_check.py "$@"
