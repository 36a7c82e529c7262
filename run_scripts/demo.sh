#!/usr/bin/env bash
# The main job on its embedded default, on CPU in minutes, showing that the ladder LEARNS: a tiny random
# Qwen2.5-VL (tiny_model --preset learner) on pixel-grounded synthetic tasks in the SpatialLadder-26k
# formats (spatialladder.demo.learnable: single image, 8 views, video), the whole ladder (stage 1 ->
# stage 2 -> cold start -> GRPO) through the same stage scripts a cluster uses, then the eval harness:
# held-out questions for the base model, every stage's output and the final model with --blind (grey
# media: the text-only control). (The final model on every benchmark's miniature: see README,
# "What the demo shows"; left out here to keep command 1 within 10 minutes on 2 cores.) Writes
# WORK_DIR/eval/learning.json, WORK_DIR/eval/report.md (learning table first) and
# WORK_DIR/plots/training.png. Everything lands in WORK_DIR (default outputs/demo); a rerun skips
# finished stages and evaluated samples. SEED moves the model init, the data and the trainers together.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEMO=1 WORK_DIR="${WORK_DIR:-outputs/demo}"
PYTHON="${PYTHON:-.venv/bin/python}"
SEED="${SEED:-0}"
RECIPES=configs/recipes/demo/learn
mapfile -t STAGES < <("$PYTHON" -m spatialladder.training.ladder stages)  # the ladder, in order
t0=$SECONDS

echo "== 1/4 tiny model, learnable tasks and held-out questions in $WORK_DIR"
"$PYTHON" -m spatialladder.demo.tiny_model "$WORK_DIR/tiny-qwen25vl" --preset learner --seed "$SEED"
"$PYTHON" -m spatialladder.demo.learnable "$WORK_DIR/learnable" --seed "$SEED" \
  --per-modality 384 --coldstart-per-modality 400 --benchmarks "$WORK_DIR/learnable-heldout"
# (no separate validation pass: every stage validates its whole data file, media decoded, before it
# loads the model)

echo "== 2/4 the ladder (run_scripts/run_all.sh with the recipes of $RECIPES)"
# the stage scripts read DATA_DIR/spld_*_data.jsonl and DATA_DIR/images; each stage writes WORK_DIR/<stage>
MODEL="$WORK_DIR/tiny-qwen25vl" DATA_DIR="$WORK_DIR/learnable" RECIPE_DIR="$RECIPES" bash run_scripts/run_all.sh --seed "$SEED"
prev="$WORK_DIR/${STAGES[-1]}"

echo "== 3/4 evaluation on held-out questions: base, every stage, and the final model blind"
eval_args=(--data-root "$WORK_DIR/learnable-heldout" --output-dir "$WORK_DIR/eval" --prompt-kind thinking
  --num-frames 8 --min-pixels 3136 --max-pixels 12544 --max-new-tokens 32 --batch-size 20 --no-report)
models=(--model "base=$WORK_DIR/tiny-qwen25vl")
for stage in "${STAGES[@]}"; do models+=(--model "$stage=$WORK_DIR/$stage"); done
bash eval/run_eval.sh "${models[@]}" --benchmarks "SPBench-SI SPBench-MV VSI-Bench" "${eval_args[@]}"
bash eval/run_eval.sh --blind --model "final-blind=$prev" --benchmarks "SPBench-SI SPBench-MV VSI-Bench" "${eval_args[@]}"

echo "== 4/4 learning figures, report and plots"
"$PYTHON" -m spatialladder.demo.learning "$WORK_DIR" --models base "${STAGES[@]}" final-blind
echo "demo finished in $((SECONDS - t0)) s: $WORK_DIR/eval/report.md, $WORK_DIR/eval/learning.json, $WORK_DIR/plots/training.png"
