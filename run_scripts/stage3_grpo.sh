#!/usr/bin/env bash
# Stage 3 — GRPO with verifiable rewards (configs/recipes/stage3_grpo.yaml).
#   bash run_scripts/stage3_grpo.sh [--key value ...]             # env knobs: see _common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sl_run_stage stage3_grpo "$@"
