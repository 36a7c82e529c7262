# shellcheck shell=bash
# Shared by the stage scripts (sourced, never run): hardware selection and launch. A stage script is
#
#   source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
#   sl_run_stage stage2_spatial "$@"
#
# What a stage runs is decided in Python (`python -m spatialladder.training.ladder plan STAGE`, the
# ladder's one declaration): its recipe, input checkpoint and output directory; a stage whose output
# holds DONE is skipped, one whose input checkpoint is missing or incomplete is refused (naming what
# is missing), and an interrupted one resumes from its newest complete checkpoint-*. Its environment:
#   DEMO=1 (or --demo)  demo recipes (configs/recipes/demo/), tiny model + synthetic data, CPU
#   WORK_DIR            every stage in WORK_DIR/<stage>, each reading the previous one's (demo: outputs/demo)
#   MODEL, OUTPUT_DIR   this stage's input checkpoint / output directory
#   DATA_DIR            dataset root: DATA_DIR/spld_*_data.jsonl and DATA_DIR/images
#   RECIPE, RECIPE_DIR  this stage's recipe file / the folder of <stage>.yaml recipes
# Hardware (chosen here):
#   ACCELERATE_CONFIG   default: cpu.yaml without a GPU or in demo mode, single_gpu.yaml for 1 GPU,
#                       zero3.yaml for several, multi_node.yaml for NNODES>1. zero2.yaml / zero3.yaml
#                       also run without a GPU: DeepSpeed's CPU accelerator (DS_ACCELERATOR=cpu) with
#                       gloo ranks (--ddp_backend gloo), set here.
#   NUM_GPUS            processes per node (default: all visible GPUs; 1 on CPU; NUM_PROCESSES too)
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT   multi-node rendezvous (same on every node)
#   PYTHON              interpreter (default: .venv/bin/python)
# Extra arguments are passed to the entry point as `--key value` overrides of the recipe.

set -euo pipefail

SL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$SL_ROOT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$SL_ROOT/.venv/bin/python" ]]; then PYTHON="$SL_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
DEMO="${DEMO:-0}"
for _arg in "$@"; do [[ "$_arg" == --demo ]] && DEMO=1; done  # `--demo` flag = DEMO=1
export DEMO PYTHONUNBUFFERED=1

sl_log() { echo "[$(date +%H:%M:%S)] [${SL_STAGE:-spatialladder}] $*" >&2; }
sl_die() { sl_log "ERROR: $*"; exit 1; }

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

# sl_launch MODULE [ARG ...]: `accelerate launch -m MODULE ARG ...` on the hardware chosen from the
# environment above.
sl_launch() {
  local module="$1"
  shift
  local args=("$@")
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
    [[ " ${args[*]-} " == *" --ddp_backend "* ]] || args+=(--ddp_backend gloo)
  elif [[ "$cpu" == 1 ]]; then
    # accelerate's MULTI_CPU mode needs mpirun; its torchrun launcher + a CPU flag gives gloo ranks.
    export ACCELERATE_USE_CPU=true
    if [[ "$nproc" -gt 1 ]]; then launch+=(--multi_gpu); fi
  fi

  sl_log "launching $module: $((nproc * nnodes)) process(es), $config"
  "$PYTHON" -m accelerate.commands.accelerate_cli launch "${launch[@]}" -m "$module" ${args[@]+"${args[@]}"}
}

# sl_run_stage STAGE [--key value ...]: launch the stage Python plans (nothing when it is finished).
sl_run_stage() {
  SL_STAGE="$1"
  local plan command
  plan="$("$PYTHON" -m spatialladder.training.ladder plan "$@")" || exit 1
  [[ -n "$plan" ]] || return 0  # finished before (the plan logged it)
  mapfile -t command <<<"$plan"
  sl_launch "${command[@]}"
}
