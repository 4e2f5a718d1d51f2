#!/usr/bin/env bash
# Every pending GPU check of streamdeq in one run, under 10 minutes on an H100/H200.
#
# The GPU machine has PyTorch with CUDA, numpy, safetensors, typer, rich, matplotlib, pyyaml and
# pillow, but not PyAV and no network; its Python is 3.12. So, in two steps:
#
#   here, once (needs the package index):   bash benchmarks/gpu_checks.sh prepare
#   there (the device tool, carry ".whl"):  bash benchmarks/gpu_checks.sh run
#
# "run" packs the JSON tables and logs into gpu-results.tar.gz in $OUT (the device tool's
# output folder) or benchmarks/gpu-results; put the tables in benchmarks/README.md (section
# "GPU") and the README.
#
# "run" is the pending checks alone, in this order:
#   a. decoding on NVDEC (`--hwaccel cuda`) against the CPU, 128x256 and 1080p H.264 clips:
#      frames/s, CPU ms a frame, whether FFmpeg really used the device, same pixels [45 s].
#      Pending because it has never run on a GPU.
#   b. `streamdeq serve`'s engine with 16 and 64 generated cameras at 30 frames/s on the
#      bundled model, 3 minutes each: sustained streams, drops, p50/p99 latency, GPU memory
#      per stream, and the same streams one by one [520 s]. Pending because it was measured on
#      an H200 on 2026-11-30 (30 s each) before the ticks batched their per-stream work and
#      before the decoder processes, not since.
#
# "all" re-runs every GPU check to see that nothing regressed, each under its own time limit
# (seconds, in brackets), in this order:
#   1. the checks above, the serve check 30 s per configuration instead of 3 minutes [45,
#      150], and the serve check of 64 cameras decoded on NVDEC [100]
#   2. `streamdeq bench gpu --size 512x1024`: eager vs torch.compile vs a CUDA graph of f [110]
#   3. `streamdeq bench latency --device cuda`: SMALL, XL and the bundled model, StreamDEQ
#      M = 1, 2, 4, 8 against the fully solved baseline [140]
#   4. latency profiles for the streaming-accuracy simulator: the bundled segmentation model at
#      128x256 and Cityscapes SMALL at 512x1024 [50 each]
#   5. the real-time clock at 17 frames/s, bundled model: baseline vs StreamDEQ M = 1, 2, 4 and
#      the fit-the-interval policy, streaming mIoU [50]
# 2-5 ran on an H200 on 2026-11-30 (benchmarks/README.md, section "GPU").
# A check that runs out of time is killed and the next one starts; the exit status says
# whether all passed.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl
AV_VERSION=18.1.0

set -- "${1:-run}"
case "$1" in
prepare)
  mkdir -p .git/info && touch .git/info/exclude
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >>.git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" "av==$AV_VERSION"
  ls -l "$WHEELS"
  ;;
run | all)
  FINAL=${OUT:-benchmarks/gpu-results}
  OUT=$(mktemp -d)  # every table and log here, packed into one file whenever the script ends
  mkdir -p "$FINAL"
  trap 'tar -czf "$FINAL/gpu-results.tar.gz" -C "$OUT" . && echo "packed into $FINAL/gpu-results.tar.gz"' EXIT
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
  python3 -c "import torch, av, streamdeq; assert torch.cuda.is_available(), 'no CUDA'; \
print(torch.__version__, torch.cuda.get_device_name(0), 'av', av.__version__)" | tee "$OUT/env.txt"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv >>"$OUT/env.txt" || true
  status=0
  check() {  # check NAME SECONDS COMMAND...: run it under a time limit, log it, go on
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" || status=1
  }
  serve=(python3 benchmarks/serve_load.py --device cuda --source file --streams 16,64 --fps 30
    --warmup 5 --json "$OUT/serve_gpu.json")
  hwdecode=(python3 benchmarks/hwdecode.py --sizes 128x256,1080x1920 --frames 240 --hwaccel cuda
    --json "$OUT/hwdecode.json")
  check hwdecode 45 "${hwdecode[@]}"
  if [ "$1" = run ]; then
    check serve_gpu 520 "${serve[@]}" --duration 180
    exit "$status"  # the EXIT trap packs the results (the device tool brings back 8 files)
  fi
  check serve_gpu 150 "${serve[@]}" --duration 30
  check serve_gpu_nvdec 100 python3 benchmarks/serve_load.py --device cuda --source file \
    --streams 64 --fps 30 --warmup 5 --duration 30 --hwaccel cuda --json "$OUT/serve_gpu_nvdec.json"
  check gpu 110 python3 -m streamdeq bench gpu --size 512x1024 --out "$OUT/gpu.json"
  check latency_cuda 140 python3 -m streamdeq bench latency --device cuda \
    --models small,xl,bundled --out "$OUT/latency_cuda.json"
  check profile_bundled 50 python3 -m streamdeq bench profile --device cuda --repeats 5 \
    --out "$OUT/profile_bundled_run.json" --profile-out "$OUT/profile_bundled_cuda.json"
  check profile_small 50 python3 -m streamdeq bench profile --device cuda --repeats 3 \
    --model mdeq-seg-small-cityscapes --size 512x1024 \
    --out "$OUT/profile_small_run.json" --profile-out "$OUT/profile_small_cuda.json"
  check realtime_17fps 50 python3 -m streamdeq experiment streaming --device cuda \
    --clock real --fps 17 --schemes baseline,stream=1,stream=2,stream=4 \
    --schedulers latest,fit --clips 4 --out "$OUT/realtime_17fps"
  exit "$status"  # the EXIT trap packs the results (the device tool brings back 8 files)
  ;;
*)
  echo "usage: bash benchmarks/gpu_checks.sh prepare|run|all" >&2
  exit 2
  ;;
esac
