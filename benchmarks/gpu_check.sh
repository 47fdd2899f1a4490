#!/usr/bin/env bash
# The GPU check of issue 22 (docs/ray.md "Throughput"): on a machine with a CUDA GPU, in under 8 minutes,
# windows/s per model (full-size CLAP architecture, aisfx when installed) on CUDA and on the CPU, the cosine of
# fp16 and bf16 CLAP audio vectors to fp32, FAISS k-means on the GPU (faiss-gpu) against the CPU, and
# `dgsearch index --engine ray` with one GPU actor. Writes benchmarks/results/gpu_check.{json,md}.
# Without a GPU (or without CUDA in torch) it says so and exits 0, having measured nothing.
#
#     benchmarks/gpu_check.sh [--out-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none): nothing measured" >&2
  exit 0
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: this torch has no CUDA ($("$PY" -c 'import torch; print(torch.__version__)')): install a CUDA build (TORCH_SPEC=torch==2.13.0 scripts/install.sh with the CUDA index); nothing measured" >&2
  exit 0
fi
nvidia-smi -L >&2
exec timeout 470 "$PY" benchmarks/gpu_check.py "$@"
