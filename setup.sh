#!/usr/bin/env bash
# Create or update the project's virtual environment and install the right stack.
#   bash setup.sh            # venv at ./.venv (override with VENV=path)
# deepspeed is part of the `dev` install (CI runs ZeRO-2/3 on CPU); with an NVIDIA GPU (nvidia-smi
# works) the `gpu` extra adds flash-attn.
# Idempotent: it re-installs only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

extras="dev"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  extras="dev,gpu"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.spatialladder-stamp"
want="$(cat pyproject.toml setup.sh | sha256sum | cut -d' ' -f1)-$extras"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $VENV is up to date ($extras)"
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
# uv (a PyPI package) installs the stack in about a quarter of pip's time (parallel downloads and
# unpacking: ~50 s against ~190 s for torch + the rest on 2 cores); pip stays the fallback. uv reads
# no pip configuration, so it takes torch from the index, as the pip path below does on purpose.
# --compile-bytecode: pip compiles at install, uv does not; where PYTHONDONTWRITEBYTECODE is set (as on
# this project's machines) every process would otherwise compile torch & co. afresh (~15 s a launch).
install() {
  if "$VENV/bin/python" -m uv --version >/dev/null 2>&1 \
    || "$VENV/bin/python" -m pip install -q uv >/dev/null 2>&1; then
    SSL_CERT_FILE="${SSL_CERT_FILE:-${PIP_CERT:-}}" UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}" \
      "$VENV/bin/python" -m uv pip install -q --compile-bytecode --python "$VENV/bin/python" "$@" && return 0
    echo "[setup] uv failed: installing with pip"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  # torchvision's PyPI wheels link against torch's CUDA libraries (they run fine on CPU), so torch
  # must be the index build too: a CPU-only local torch wheel that a machine's pip config offers
  # through find-links would make `import torchvision` (and so Qwen's video processor) fail.
  if ! "$VENV/bin/python" -c "import torchvision" >/dev/null 2>&1; then
    local torch_pins  # pyproject.toml's own torch/torchvision pins
    torch_pins="$(grep -oE '"torch(vision)?==[^"]+"' pyproject.toml | tr -d '"' | tr '\n' ' ')"
    # shellcheck disable=SC2086
    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$VENV/bin/python" -m pip install -q \
      --force-reinstall $torch_pins
  fi
  "$VENV/bin/python" -m pip install -q "$@"
}
install -e ".[dev]"
if [[ "$extras" == *gpu* ]]; then
  # flash-attn builds against the installed torch: install it without build isolation (so its
  # build tools must be in the venv).
  install setuptools wheel packaging ninja psutil
  "$VENV/bin/python" -m pip install -q --no-build-isolation flash-attn==2.8.3.post2 \
    || echo "[setup] flash-attn unavailable: attention falls back to sdpa"
fi
# Without a GPU, DeepSpeed (ZeRO-2/3 on gloo ranks) builds one CPU communication op on its first
# launch (~2 min on 2 cores, cached in ~/.cache/torch_extensions); the ZeRO tests build it up front.
echo "$want" > "$stamp"
"$VENV/bin/python" -c "import torch, transformers, trl; print(f'[setup] torch {torch.__version__} (cuda={torch.cuda.is_available()}), transformers {transformers.__version__}, trl {trl.__version__}')"
