#!/usr/bin/env bash
# Cold start — think-then-answer SFT (configs/recipes/coldstart.yaml); GRPO starts from it.
#   bash run_scripts/coldstart.sh [--key value ...]               # env knobs: see _common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sl_run_stage coldstart "$@"
