#!/usr/bin/env bash
# The whole ladder (spatialladder/training/ladder.py), each stage starting from the previous one's output:
#   stage 1 (grounding) -> stage 2 (spatial) -> cold start -> stage 3 (GRPO)
#   bash run_scripts/run_all.sh [--key value ...]     # extra args go to every stage
#   DEMO=1 bash run_scripts/run_all.sh                # (or --demo) tiny model + synthetic data on CPU
# WORK_DIR puts every stage under WORK_DIR/<stage> (demo default: outputs/demo); MODEL sets
# stage 1's input, RECIPE_DIR the recipes' folder. Finished stages (DONE) are skipped, an
# interrupted one resumes, and the first failure stops the chain. Other knobs: see _common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
unset OUTPUT_DIR RECIPE  # one stage's own; every stage's are resolved from WORK_DIR / the recipes

stages="$("$PYTHON" -m spatialladder.training.ladder stages)"
for stage in $stages; do
  (sl_run_stage "$stage" "$@")
  unset MODEL  # the first stage's input; every later stage reads the one before
done
sl_log "ladder finished"
