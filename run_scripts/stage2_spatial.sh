#!/usr/bin/env bash
# Stage 2 — understanding: direct-answer spatial SFT (configs/recipes/stage2_spatial.yaml).
#   bash run_scripts/stage2_spatial.sh [--key value ...]          # env knobs: see _common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sl_run_stage stage2_spatial "$@"
