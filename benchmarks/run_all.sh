#!/usr/bin/env bash
# Run every benchmark once; each writes benchmarks/results/<name>.{json,md}. About 2 h on 2 quiet cores.
# Usage: bash benchmarks/run_all.sh [--device cpu|cuda|auto]   (GPU parts are skipped without a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
DEVICE="${2:-cpu}"
[ "${1:-}" = "--device" ] || DEVICE=cpu
"$PY" benchmarks/bench_indexing.py --clips 240 --ab-prefetch --device "$DEVICE"
"$PY" benchmarks/bench_memory.py --clips 20 --device "$DEVICE"
"$PY" benchmarks/bench_search.py --sizes 100000 1000000 --device "$DEVICE"
"$PY" benchmarks/bench_search.py --data realistic --sizes 100000 1000000 --text-queries 0 --device "$DEVICE"
"$PY" benchmarks/bench_query.py --sizes 100000 1000000 --device "$DEVICE"
"$PY" benchmarks/bench_coldstart.py --repeats 5 --device "$DEVICE"
"$PY" benchmarks/synthetic_gap.py
"$PY" benchmarks/ablation_gap.py
"$PY" benchmarks/bench_aisfx.py
"$PY" benchmarks/bench_aisfx_precision.py
"$PY" benchmarks/bench_dupes.py --size 100000 --no-exact
"$PY" benchmarks/bench_dupes_threshold.py
"$PY" benchmarks/bench_cavp.py --device "$DEVICE"
"$PY" benchmarks/bench_serve.py --clients 8 --device "$DEVICE"
