#!/usr/bin/env bash
# Install diffgap-search into ./.venv: system packages (ffmpeg, libsndfile, and the CC0 recordings of
# sonic-pi-samples that the tests use) where we can, PyTorch, the package with its test extras, and the aisfx
# model package without its dependencies (it pins numpy 1.23 and librosa 0.9; we only read its checkpoint).
# Safe to run again. Env: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0, the CPU build this
# project is developed on).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
ldconfig -p 2>/dev/null | grep -q libsndfile || need_apt+=(libsndfile1)
[ -d /usr/share/sonic-pi/samples ] || need_apt+=(sonic-pi-samples)  # real CC0 recordings for the tests
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)                  # dgsearch serve's page tests (headless)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${need_apt[*]}" >&2
    apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${need_apt[@]}" >/dev/null
    }
  else
    echo "warning: please install ${need_apt[*]} (ffmpeg: m4a/opus audio and video; sonic-pi-samples, chromium: tests)" >&2
  fi
fi

# CPython's own test recordings (one pluck as AIFF, AIFF-C a-law/u-law, Sun au and WAV at 8-32 bits, from Debian's
# libpython3.X-testsuite) for the media-format tests: unpacked into tests/.media (git-ignored), not installed (the
# package pins the system Python's exact build). Skipped where apt is not at hand: those tests then skip, saying so.
audiodata=tests/.media/cpython-audiodata
if [ ! -f "$audiodata/pluck-pcm16.aiff" ] && command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  pkg=$(apt-cache search --names-only '^libpython3\.[0-9]+-testsuite$' 2>/dev/null | cut -d' ' -f1 | sort -V | tail -1)
  if [ -z "$pkg" ] || ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(apt-cache search --names-only '^libpython3\.[0-9]+-testsuite$' 2>/dev/null | cut -d' ' -f1 | sort -V | tail -1)
    [ -n "$pkg" ] && (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) || true
  fi
  if ls "$tmp"/*.deb >/dev/null 2>&1 && dpkg -x "$tmp"/*.deb "$tmp/x"; then
    mkdir -p "$audiodata"
    cp "$tmp"/x/usr/lib/python3*/test/audiodata/pluck-* "$audiodata"/ 2>/dev/null || true
  fi
  rm -rf "$tmp"
  [ -f "$audiodata/pluck-pcm16.aiff" ] || echo "warning: CPython's test recordings could not be fetched; the AIFF/au tests will skip" >&2
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e '.[test,docs,plot,onnx,ray]'  # plot: `dgsearch eval --plot` (matplotlib); onnx: the ONNX Runtime precision paths (issue 27); ray: `--engine ray` and its tests (ray[data] 2.60)
# `--model aisfx` reads the checkpoint inside this wheel; its own pins (numpy==1.23, librosa==0.9.2) stay out.
.venv/bin/python -m pip install -q --no-deps aisfx==0.1.2
# `--text-model wordllama` reads the 16 MB safetensors table and the tokenizer file inside this wheel (our own
# loader: safetensors + tokenizers, both dependencies already); its own (pydantic, requests, toml) stay out.
.venv/bin/python -m pip install -q --no-deps wordllama==0.4.0.post1
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  # faiss-gpu where a GPU exists (same `faiss` module; never required).
  .venv/bin/python -m pip install -q faiss-gpu-cu12 && .venv/bin/python -m pip uninstall -q -y faiss-cpu || \
    echo "warning: faiss-gpu-cu12 could not be installed; using faiss-cpu" >&2
fi
echo "installed: $(.venv/bin/dgsearch --version)" >&2
