#!/usr/bin/env bash
# Work in progress (issue 9): the learning demo. On CPU in minutes, showing that the ladder LEARNS: a tiny
# random Qwen2.5-VL ("learner" preset) on pixel-grounded synthetic tasks in the SpatialLadder-26k
# formats (spatialladder.synthetic.learnable: single image, 8 views, video), the whole ladder
# (stage 1 -> stage 2 -> cold start -> GRPO) through the same stage scripts a cluster uses, then
# the eval harness on held-out questions for the base model, every stage's output and the final
# model with --blind (grey media: the text-only control). Writes WORK_DIR/eval/learning.json,
# WORK_DIR/eval/report.md (learning table first) and WORK_DIR/plots/training.png. Everything lands
# in WORK_DIR (default outputs/demo-learning); a rerun skips finished stages and evaluated samples.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEMO=1 WORK_DIR="${WORK_DIR:-outputs/demo-learning}"
PYTHON="${PYTHON:-.venv/bin/python}"
RECIPES=configs/recipes/demo/learn
stages="$("$PYTHON" -m spatialladder.training.ladder stages)"  # the ladder, in order
mapfile -t STAGES <<<"$stages"
t0=$SECONDS

echo "== 1/4 tiny model and learnable synthetic tasks in $WORK_DIR"
"$PYTHON" -m spatialladder.tiny_model "$WORK_DIR/tiny-qwen25vl" --preset learner
"$PYTHON" -m spatialladder.synthetic.learnable "$WORK_DIR/learnable" --seed 0 --coldstart-per-modality 192 \
  --benchmarks "$WORK_DIR/learnable-heldout"
"$PYTHON" -m spatialladder.data.validate "$WORK_DIR"/learnable/spld_*_data.jsonl \
  --media-root "$WORK_DIR/learnable/images" --no-progress

echo "== 2/4 the ladder (run_scripts/run_all.sh with the recipes of $RECIPES)"
# the stage scripts read DATA_DIR/spld_*_data.jsonl and DATA_DIR/images; each stage writes WORK_DIR/<stage>
MODEL="$WORK_DIR/tiny-qwen25vl" DATA_DIR="$WORK_DIR/learnable" RECIPE_DIR="$RECIPES" bash run_scripts/run_all.sh
prev="$WORK_DIR/${STAGES[-1]}"

echo "== 3/4 evaluation on held-out questions: base, every stage, and the final model blind"
eval_args=(--benchmarks "SPBench-SI SPBench-MV VSI-Bench" --data-root "$WORK_DIR/learnable-heldout"
  --output-dir "$WORK_DIR/eval" --prompt-kind thinking --num-frames 8 --min-pixels 3136 --max-pixels 12544
  --max-new-tokens 40 --batch-size 12 --no-report)
models=(--model "base=$WORK_DIR/tiny-qwen25vl")
for stage in "${STAGES[@]}"; do models+=(--model "$stage=$WORK_DIR/$stage"); done
bash eval/run_eval.sh "${models[@]}" "${eval_args[@]}"
bash eval/run_eval.sh --blind --model "final-blind=$prev" "${eval_args[@]}"

echo "== 4/4 learning figures, report and plots"
"$PYTHON" -m spatialladder.evaluation.learning "$WORK_DIR" --models base "${STAGES[@]}" final-blind
echo "demo finished in $((SECONDS - t0)) s: $WORK_DIR/eval/report.md, $WORK_DIR/eval/learning.json, $WORK_DIR/plots/training.png"
