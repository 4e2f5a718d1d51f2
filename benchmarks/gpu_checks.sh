#!/usr/bin/env bash
# Every pending GPU check of streamdeq in one run, well under 10 minutes on an H100/H200.
#
# The GPU machine has PyTorch with CUDA, numpy, safetensors, typer, rich, matplotlib, pyyaml and
# pillow, but not PyAV and no network; its Python is 3.12. So, in two steps:
#
#   here, once (needs the package index):   bash benchmarks/gpu_checks.sh prepare
#   there (the device tool, carry ".whl"):  bash benchmarks/gpu_checks.sh run
#
# "run" writes the JSON tables and logs into $OUT (the device tool's output folder) or
# benchmarks/gpu-results; put the tables in benchmarks/README.md (section "GPU") and the README's
# speed table. The checks: `streamdeq bench gpu --size 512x1024` (eager vs torch.compile vs a
# CUDA graph of f, syncs per frame) and `streamdeq bench latency --device cuda` on SMALL, XL and
# the bundled model (StreamDEQ M = 1, 2, 4, 8 against the fully solved baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl
AV_VERSION=18.1.0

case "${1:-run}" in
prepare)
  mkdir -p .git/info && touch .git/info/exclude
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >>.git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" "av==$AV_VERSION"
  ls -l "$WHEELS"
  ;;
run)
  OUT=${OUT:-benchmarks/gpu-results}
  mkdir -p "$OUT"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
  python3 -c "import torch, av, streamdeq; assert torch.cuda.is_available(), 'no CUDA'; \
print(torch.__version__, torch.cuda.get_device_name(0), 'av', av.__version__)" | tee "$OUT/env.txt"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv >>"$OUT/env.txt" || true
  status=0
  timeout 270 python3 -m streamdeq bench gpu --size 512x1024 --out "$OUT/gpu.json" \
    2>&1 | tee "$OUT/gpu.log" || status=1
  timeout 270 python3 -m streamdeq bench latency --device cuda --models small,xl,bundled \
    --out "$OUT/latency_cuda.json" 2>&1 | tee "$OUT/latency_cuda.log" || status=1
  exit "$status"
  ;;
*)
  echo "usage: bash benchmarks/gpu_checks.sh prepare|run" >&2
  exit 2
  ;;
esac
