#!/usr/bin/env bash
# Install diffgap-search into ./.venv: system packages (ffmpeg, libsndfile) where we can, PyTorch, then the
# package with its test extras. Safe to run again. Env: PYTHON (default python3), TORCH_SPEC (default
# torch==2.13.0, the CPU build this project is developed on).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
ldconfig -p 2>/dev/null | grep -q libsndfile || need_apt+=(libsndfile1)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${need_apt[*]}" >&2
    apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${need_apt[@]}" >/dev/null
    }
  else
    echo "warning: please install ${need_apt[*]} (needed for m4a/opus audio and for video)" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e '.[test]'
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  # faiss-gpu where a GPU exists (same `faiss` module; never required).
  .venv/bin/python -m pip install -q faiss-gpu-cu12 && .venv/bin/python -m pip uninstall -q -y faiss-cpu || \
    echo "warning: faiss-gpu-cu12 could not be installed; using faiss-cpu" >&2
fi
echo "installed: $(.venv/bin/dgsearch --version)" >&2
