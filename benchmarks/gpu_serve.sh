#!/usr/bin/env bash
# streamdeq serve's engine on a GPU: 16 and 64 generated cameras at 30 frames/s, 3 minutes each
# (benchmarks/serve_load.py --device cuda --source file): streams sustained without drops, p99
# latency, GPU memory per stream. About 8 minutes including the sequential comparison.
#
# The GPU machine lacks PyAV (see gpu_checks.sh), so in two steps:
#   here, once (needs the package index):   bash benchmarks/gpu_checks.sh prepare
#   there (the device tool, carry ".whl"):  bash benchmarks/gpu_serve.sh [SECONDS]
# The rows go to $OUT/serve_gpu.json (or benchmarks/gpu-results); put the table in
# benchmarks/README.md, section "Serving many cameras".
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_CONFIG=${1:-180}
OUT=${OUT:-benchmarks/gpu-results}
mkdir -p "$OUT"
if ! python3 -c "import av" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
python3 benchmarks/serve_load.py --device cuda --source file --streams 16,64 --fps 30 \
  --duration "$SECONDS_PER_CONFIG" --warmup 10 --json "$OUT/serve_gpu.json" \
  2>&1 | tee "$OUT/serve_gpu.log"
