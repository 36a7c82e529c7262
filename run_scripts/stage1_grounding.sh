#!/usr/bin/env bash
# Stage 1 — perception: grounding SFT from the base model (configs/recipes/stage1_grounding.yaml).
#   bash run_scripts/stage1_grounding.sh [--key value ...]        # env knobs: see _common.sh
#   DEMO=1 bash run_scripts/stage1_grounding.sh     (or --demo)  # tiny model + synthetic data, CPU
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sl_run_stage stage1_grounding "$@"
