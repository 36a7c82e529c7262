#!/usr/bin/env bash
# The main job on its embedded default, on CPU in minutes: a tiny random Qwen2.5-VL and synthetic
# scenes in the SpatialLadder-26k formats, the whole ladder (stage 1 -> stage 2 -> cold start ->
# GRPO) through the same stage scripts a cluster uses, then the eval table on synthetic
# miniatures of every benchmark (the paper's six and the extended ones). Everything lands in
# WORK_DIR (default outputs/demo); a rerun skips finished stages and evaluated samples.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEMO=1 WORK_DIR="${WORK_DIR:-outputs/demo}"
PYTHON="${PYTHON:-.venv/bin/python}"

echo "== 1/5 tiny model and synthetic data in $WORK_DIR"
"$PYTHON" -m spatialladder.tiny_model "$WORK_DIR/tiny-qwen25vl"
"$PYTHON" -m spatialladder.synthetic.cli "$WORK_DIR/synthetic" --seed 0
"$PYTHON" -m spatialladder.data.validate "$WORK_DIR"/synthetic/spld_*_data.jsonl \
  --media-root "$WORK_DIR/synthetic/media" --no-progress

echo "== 2/5 the ladder (run_scripts/run_all.sh)"
bash run_scripts/run_all.sh

echo "== 3/5 synthetic benchmark miniatures"
"$PYTHON" eval/make_fixtures.py "$WORK_DIR/benchmarks"

echo "== 4/5 evaluation: base tiny model vs the ladder's final checkpoint"
final="$WORK_DIR/stage3_grpo"
[[ -f "$final/DONE" ]] || final="$WORK_DIR/coldstart"
bash eval/run_eval.sh --model "tiny-base=$WORK_DIR/tiny-qwen25vl" --model "tiny-$(basename "$final")=$final" \
  --benchmarks all --data-root "$WORK_DIR/benchmarks" --output-dir "$WORK_DIR/eval" \
  --prompt-kind thinking --num-frames 8 --max-pixels 12544 --max-new-tokens 32 --batch-size 4
cat "$WORK_DIR/eval/report.md"

echo "== 5/5 along the ladder: semantic entropy and visual-attention share per stage"
"$PYTHON" -m spatialladder.analysis ladder "$WORK_DIR" --max-new-tokens 48 --min-pixels 3136 --max-pixels 12544 \
  --num-frames 4  # prints the table; WORK_DIR/analysis/ladder/ladder.{md,json,png}
