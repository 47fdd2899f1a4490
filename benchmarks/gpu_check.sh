#!/usr/bin/env bash
# The GPU check of issue 22 (docs/ray.md "On one GPU"): on a machine with a CUDA GPU, in under 8 minutes, the
# parts of benchmarks/gpu_check.py in order of what they tell: CLAP windows/s on CUDA (auto and fp32) and on the
# CPU with the fp16/bf16 cosines to fp32; DiffGAP training per 10k pairs; `dgsearch index` and `dgsearch train`
# with --device cuda; CLIP, CAVP and aisfx on CUDA and on the CPU; FAISS k-means (on the GPU with faiss-gpu);
# `dgsearch index --engine ray` with one GPU actor where Ray is installed. A part that fails or would overrun
# --budget-s is recorded as such. Writes benchmarks/results/gpu_check.{json,md} (or --out-dir).
# Without a GPU (or without CUDA in torch) it says so and exits 0, having measured nothing; `python
# benchmarks/gpu_check.py --dry-run` runs every part on the CPU instead, to check the code.
#
#     benchmarks/gpu_check.sh [--out-dir DIR] [--budget-s 420] [--only clap,training,...]
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
