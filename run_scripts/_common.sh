# shellcheck shell=bash
# Shared by the stage scripts (sourced, never run). A stage script is a few lines:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
#   sl_run_stage stage2_spatial stage1_grounding spatialladder.training.sft "$@"
#
# Environment (all optional):
#   DEMO=1 (or --demo)  demo recipes (configs/recipes/demo/), tiny model + synthetic data, CPU
#   WORK_DIR            root for every stage's output: WORK_DIR/<stage> (demo default: outputs/demo);
#                       a stage's default input is then WORK_DIR/<previous stage>
#   MODEL               input checkpoint (overrides the recipe's model_name_or_path)
#   OUTPUT_DIR          this stage's output directory (overrides WORK_DIR and the recipe)
#   DATA_DIR            dataset root: DATA_DIR/spld_*_data.jsonl and DATA_DIR/images
#   RECIPE              recipe file (overrides configs/recipes[/demo]/<stage>.yaml)
#   ACCELERATE_CONFIG   hardware config (default: cpu.yaml without a GPU or in demo mode,
#                       single_gpu.yaml for 1 GPU, zero3.yaml for several, multi_node.yaml for NNODES>1).
#                       zero2.yaml / zero3.yaml also run without a GPU: DeepSpeed's CPU accelerator
#                       (DS_ACCELERATOR=cpu) with gloo ranks (--ddp_backend gloo), set here.
#   NUM_GPUS            processes per node (default: all visible GPUs; 1 on CPU; NUM_PROCESSES too)
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT   multi-node rendezvous (same on every node)
#   PYTHON              interpreter (default: .venv/bin/python)
# Extra arguments are passed to the entry point as `--key value` overrides of the recipe.
#
# A stage refuses to start when its input checkpoint is missing or incomplete, is skipped when its
# output already holds DONE (written last by the entry point), and resumes from its newest complete
# checkpoint-* after an interruption (the entry point does this on its own).

set -euo pipefail

SL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$SL_ROOT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$SL_ROOT/.venv/bin/python" ]]; then PYTHON="$SL_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
DEMO="${DEMO:-0}"
for _arg in "$@"; do [[ "$_arg" == --demo ]] && DEMO=1; done  # `--demo` flag = DEMO=1
[[ "$DEMO" == 1 && -z "${WORK_DIR:-}" ]] && WORK_DIR="outputs/demo"
WORK_DIR="${WORK_DIR:-}"
export PYTHONUNBUFFERED=1

sl_log() { echo "[$(date +%H:%M:%S)] [${SL_STAGE:-spatialladder}] $*" >&2; }
sl_die() { sl_log "ERROR: $*"; exit 1; }

# sl_recipe_get RECIPE KEY -> the key's value (first list item for lists); empty if absent.
sl_recipe_get() {
  "$PYTHON" - "$1" "$2" <<'PY'
import sys, yaml
value = (yaml.safe_load(open(sys.argv[1])) or {}).get(sys.argv[2])
if isinstance(value, list):
    value = value[0] if value else None
print("" if value is None else value)
PY
}

sl_is_local_path() {  # a directory, as opposed to a Hub id org/name (whose org is no local dir)
  [[ "$1" == /* || "$1" == .* || "$1" == ~* || -e "$1" || -d "${1%%/*}" || ! "$1" =~ ^[^/]+/[^/]+$ ]]
}

# Refuse to start, naming what is missing, unless $1 is a complete model + processor checkpoint.
sl_check_input() {
  local model="$1" problems
  sl_is_local_path "$model" || { sl_log "input: $model (Hugging Face Hub id)"; return 0; }
  if ! problems="$("$PYTHON" -m spatialladder.training.modeling check "$model" 2>&1)"; then
    sl_die "refusing to start: input checkpoint $model is missing or incomplete:
$problems"
  fi
  if [[ ! -f "$model/DONE" ]] && compgen -G "$model/checkpoint-*" >/dev/null; then
    sl_die "refusing to start: input checkpoint $model has checkpoint-* but no DONE marker: the stage that writes it did not finish (rerun it)"
  fi
  sl_log "input: $model"
}

# Demo assets (both builders are idempotent): the tiny Qwen2.5-VL and the synthetic dataset.
sl_prepare_demo_model() {
  if [[ ! -f "$WORK_DIR/tiny-qwen25vl/.tiny_qwen25vl_complete.json" ]]; then
    sl_log "building the tiny Qwen2.5-VL in $WORK_DIR/tiny-qwen25vl"
    mkdir -p "$WORK_DIR"
    "$PYTHON" -m spatialladder.tiny_model "$WORK_DIR/tiny-qwen25vl" >/dev/null
  fi
}
sl_prepare_demo_data() {
  if [[ ! -f "$WORK_DIR/synthetic/spld_coldstart_data.jsonl" ]]; then
    sl_log "generating synthetic scenes in $WORK_DIR/synthetic"
    "$PYTHON" -m spatialladder.synthetic.cli "$WORK_DIR/synthetic" --seed 0 >/dev/null
  fi
}

sl_gpu_count() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    nvidia-smi -L | grep -c '^GPU'
  else
    echo 0
  fi
}

sl_free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# sl_stage_output STAGE RECIPE -> the stage's output directory.
sl_stage_output() {
  if [[ -n "${WORK_DIR}" ]]; then echo "$WORK_DIR/$1"; else sl_recipe_get "$2" output_dir; fi
}

# sl_recipe STAGE -> the recipe file of a stage.
sl_recipe() {
  if [[ "$DEMO" == 1 ]]; then echo "configs/recipes/demo/$1.yaml"; else echo "configs/recipes/$1.yaml"; fi
}

# sl_run_stage STAGE PREV_STAGE ENTRY_MODULE [--key value ...]
#   PREV_STAGE: the stage whose output is this stage's default input ("" = the recipe's / base model).
sl_run_stage() {
  local stage="$1" prev="$2" module="$3" arg
  shift 3
  local extra=()
  for arg in "$@"; do [[ "$arg" == --demo ]] || extra+=("$arg"); done
  SL_STAGE="$stage"
  local recipe="${RECIPE:-$(sl_recipe "$stage")}"
  [[ -f "$recipe" ]] || sl_die "recipe not found: $recipe"

  local output="${OUTPUT_DIR:-$(sl_stage_output "$stage" "$recipe")}"
  [[ -n "$output" ]] || sl_die "no output_dir (recipe $recipe, OUTPUT_DIR, WORK_DIR)"
  if [[ -f "$output/DONE" ]]; then
    sl_log "already finished ($output/DONE): skipping; delete $output to train it again"
    return 0
  fi

  local model="${MODEL:-}"
  if [[ -z "$model" ]]; then
    if [[ -n "$prev" && -n "$WORK_DIR" ]]; then
      model="$WORK_DIR/$prev"
    elif [[ "$DEMO" == 1 ]]; then
      model="$WORK_DIR/tiny-qwen25vl"
    else
      model="$(sl_recipe_get "$recipe" model_name_or_path)"
    fi
  fi
  if [[ "$DEMO" == 1 && "$model" == "$WORK_DIR/tiny-qwen25vl" ]]; then sl_prepare_demo_model; fi
  sl_check_input "$model"
  if [[ "$DEMO" == 1 ]]; then sl_prepare_demo_data; fi

  local overrides=(--model_name_or_path "$model" --output_dir "$output")
  local data_file
  data_file="$(basename "$(sl_recipe_get "$recipe" data_files)")"
  if [[ -n "${DATA_DIR:-}" ]]; then
    overrides+=(--data_files "$DATA_DIR/$data_file" --media_root "$DATA_DIR/images")
  elif [[ "$DEMO" == 1 ]]; then
    overrides+=(--data_files "$WORK_DIR/synthetic/$data_file" --media_root "$WORK_DIR/synthetic/media")
  fi

  # Hardware.
  local gpus nnodes="${NNODES:-1}" node_rank="${NODE_RANK:-0}" config="${ACCELERATE_CONFIG:-}" cpu=0
  gpus="$(sl_gpu_count)"
  local nproc="${NUM_GPUS:-${NUM_PROCESSES:-}}"
  if [[ -z "$nproc" ]]; then
    if [[ "$DEMO" == 1 || "$gpus" -eq 0 ]]; then nproc=1; else nproc="$gpus"; fi
  fi
  if [[ -z "$config" ]]; then
    if [[ "$DEMO" == 1 || "$gpus" -eq 0 ]]; then config=configs/accelerate/cpu.yaml
    elif [[ "$nnodes" -gt 1 ]]; then config=configs/accelerate/multi_node.yaml
    elif [[ "$nproc" -gt 1 ]] && "$PYTHON" -c "import deepspeed" >/dev/null 2>&1; then
      config=configs/accelerate/zero3.yaml  # the paper's setup
    elif [[ "$nproc" -gt 1 ]]; then
      sl_log "deepspeed is not installed (bash setup.sh adds it on GPU machines): using DDP"
      config=configs/accelerate/multi_gpu.yaml
    else config=configs/accelerate/single_gpu.yaml
    fi
  fi
  [[ -f "$config" ]] || sl_die "accelerate config not found: $config"
  if [[ "$(basename "$config")" == cpu.yaml || "$gpus" -eq 0 ]]; then cpu=1; fi
  # The engine the config asks for; the entry point stops if it ends up running another one.
  local engine
  engine="$("$PYTHON" -m spatialladder.training.engine requested "$config" $([[ "$cpu" == 1 ]] && echo --cpu))" \
    || sl_die "accelerate config $config cannot run here (see above)"
  export SPATIALLADDER_ENGINE="$engine"
  local port="${MASTER_PORT:-}"
  [[ -n "$port" ]] || { if [[ "$nnodes" -gt 1 ]]; then port=29500; else port="$(sl_free_port)"; fi; }
  local launch=(--config_file "$config" --num_processes "$((nproc * nnodes))" --num_machines "$nnodes"
    --machine_rank "$node_rank" --main_process_ip "${MASTER_ADDR:-127.0.0.1}" --main_process_port "$port")
  if [[ "$cpu" == 1 && "$engine" == deepspeed-* ]]; then
    # DeepSpeed on CPU: its CPU accelerator and gloo ranks. ACCELERATE_USE_CPU would make accelerate
    # launch without DeepSpeed (silently: plain DDP), so it must stay unset here.
    [[ -z "${ACCELERATE_USE_CPU:-}" ]] || sl_die "ACCELERATE_USE_CPU is set: accelerate would drop DeepSpeed ($config); unset it"
    export DS_ACCELERATOR=cpu
    [[ " ${extra[*]-} " == *" --ddp_backend "* ]] || extra+=(--ddp_backend gloo)
  elif [[ "$cpu" == 1 ]]; then
    # accelerate's MULTI_CPU mode needs mpirun; its torchrun launcher + a CPU flag gives gloo ranks.
    export ACCELERATE_USE_CPU=true
    if [[ "$nproc" -gt 1 ]]; then launch+=(--multi_gpu); fi
  fi

  local resume
  resume="$("$PYTHON" -m spatialladder.training.modeling resume "$output")"
  [[ -z "$resume" ]] || sl_log "resuming from $resume"
  sl_log "recipe $recipe -> $output ($((nproc * nnodes)) process(es), $config)"
  "$PYTHON" -m accelerate.commands.accelerate_cli launch "${launch[@]}" \
    -m "$module" --config "$recipe" "${overrides[@]}" ${extra[@]+"${extra[@]}"}
  [[ -f "$output/DONE" ]] || sl_die "the run ended without writing $output/DONE"
  sl_log "done: $output"
}
