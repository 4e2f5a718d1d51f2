"""Load on ``streamdeq serve``'s engine: N cameras at F frames/s each through one Service.

CPU (default): each camera is a loopback TCP server sending an H.264 MPEG-TS at F frames/s
(paced by bytes, looping over one connection), read by the service like any tcp:// camera.
``--source file`` (the GPU run): each camera is a generated clip file played at its own rate,
looping, so 64 cameras need no 64 network servers.

Per configuration it reports: achieved frames/s per stream (mean, min), frames dropped as
stale (latest-only), p50/p99 of arrival-to-result latency, RSS at start and end, ticks and
mean batch size, and the throughput of the same streams run one by one through StreamDEQ
(round robin, one frame each in turn) on the same frames. On CUDA, the peak memory the
streams add, per stream (``torch.cuda.max_memory_allocated``).

    python benchmarks/serve_load.py --streams 4,16 --fps 10 --duration 600
    python benchmarks/serve_load.py --device cuda --source file --streams 16,64 --fps 30 \
        --duration 180 --json serve_gpu.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from streamdeq import StreamDEQ, tune_cpu_allocator
from streamdeq.models.resolve import resolve_model
from streamdeq.serve import Service, SourceOptions
from streamdeq.stream import StreamSettings
from streamdeq.stream.frames import PreprocessSettings

HEIGHT, WIDTH = 128, 256  # the bundled model's input size: no resize in the way
CLIP_FRAMES = 60
RSS_EVERY_S = 60  # seconds between RSS samples while measuring


def frames(count: int, seed: int) -> list[np.ndarray]:
    """Smoothly moving coloured gradients, a different phase per camera."""
    rows = np.arange(HEIGHT)[:, None]
    cols = np.arange(WIDTH)[None, :]
    out = []
    for t in range(count):
        image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        image[..., 0] = (cols * 2 + 5 * t + 37 * seed) % 256
        image[..., 1] = (rows * 3 + 2 * t) % 256
        image[..., 2] = (rows + cols + 11 * seed) % 256
        out.append(image)
    return out


def encode(images: list[np.ndarray], fps: float, target: str | io.BytesIO, fmt: str) -> None:
    with av.open(target, "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.options = {"tune": "zerolatency", "preset": "veryfast"}
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


class PacedServer:
    """A camera on 127.0.0.1: the payload sent at its frame rate, looped, to each client."""

    def __init__(self, payload: bytes, seconds: float) -> None:
        self.payload, self.seconds = payload, seconds
        self.done = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                self._send(connection)

    def _send(self, connection: socket.socket) -> None:
        chunk = 7 * 188
        interval = self.seconds * chunk / len(self.payload)
        start = time.monotonic()
        sent = 0
        while not self.done.is_set():
            offset = sent % len(self.payload)
            try:
                connection.sendall(self.payload[offset : offset + chunk])
            except OSError:
                return
            sent += min(chunk, len(self.payload) - offset)
            delay = start + (sent / chunk) * interval - time.monotonic()
            if delay > 0:
                self.done.wait(delay)

    def close(self) -> None:
        self.done.set()
        self.listener.close()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sequential_fps(model, device: str, n: int, iters: int, seconds: float) -> float:
    """Frames/s of n streams run one by one through StreamDEQ (round robin)."""
    streams = [StreamDEQ(model, iters=iters, device=device) for _ in range(n)]
    clips = [frames(CLIP_FRAMES, seed) for seed in range(n)]
    for stream, clip in zip(streams, clips):  # warm-up
        stream.step(clip[0])
    done, start, t = 0, time.perf_counter(), 1
    while time.perf_counter() - start < seconds:
        for stream, clip in zip(streams, clips):
            stream.step(clip[t % CLIP_FRAMES])
            done += 1
        t += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def _base(model, size: str | None) -> StreamSettings | None:
    """Frames resized to ``size`` ("HxW") for the model: a small size leaves the model cheap,
    so what is left of a tick is the service's own cost (None: the model's declared size)."""
    if size is None:
        return None
    h, w = (int(v) for v in size.lower().split("x"))
    preprocess = StreamSettings().preprocess_for(model)
    return StreamSettings(
        preprocess=PreprocessSettings(mean=preprocess.mean, std=preprocess.std, resize=(h, w))
    )


def run_config(model, args, n: int, folder: Path) -> dict:
    period = CLIP_FRAMES / args.fps
    servers: list[PacedServer] = []
    sources = []
    for seed in range(n):
        images = frames(CLIP_FRAMES, seed)
        if args.source == "live":
            buffer = io.BytesIO()
            encode(images, args.fps, buffer, "mpegts")
            servers.append(PacedServer(buffer.getvalue(), period))
            sources.append(servers[-1].url)
        else:
            path = folder / f"cam{seed}.mp4"
            encode(images, args.fps, str(path), "mp4")
            sources.append(str(path))
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_memory = torch.cuda.max_memory_allocated()
    service = Service(
        model,
        device=args.device,
        max_streams=n,
        defaults={"iters": args.iters},
        source_options=SourceOptions(timeout=5.0, probesize=args.probesize),
        stream_base=_base(model, args.input_size),
    )
    service.start()
    rss_start = rss_mb()
    for seed, source in enumerate(sources):
        service.add_stream(source, stream_id=f"cam{seed}", loop=True, persist=False)
    subscription = service.subscribe()
    time.sleep(args.warmup)
    before = {s["id"]: s for s in service.streams()}
    ticks_before = service.metrics()["ticks"]
    latencies: list[float] = []
    rss_settled = rss_mb()  # every stream open and warm: what a leak would grow from
    rss_samples = [round(rss_settled, 1)]
    start = next_sample = time.monotonic()
    while time.monotonic() - start < args.duration:
        latencies += [r["latency_ms"] for r in subscription.get(0.5)]
        if time.monotonic() >= next_sample + RSS_EVERY_S:
            next_sample += RSS_EVERY_S
            rss_samples.append(round(rss_mb(), 1))
    elapsed = time.monotonic() - start
    after = {s["id"]: s for s in service.streams()}
    metrics = service.metrics()
    summary = service.summary()
    rss_end = rss_mb()
    service.stop()
    for server in servers:
        server.close()
    per_stream = [(after[k]["frames"] - before[k]["frames"]) / elapsed for k in after]
    drops = sum(after[k]["drops"] - before[k]["drops"] for k in after)
    row = {
        "streams": n,
        "offered_fps_per_stream": args.fps,
        "fps_per_stream_mean": round(float(np.mean(per_stream)), 2),
        "fps_per_stream_min": round(float(np.min(per_stream)), 2),
        "total_fps": round(float(np.sum(per_stream)), 1),
        "drops": drops,
        "drop_pct": round(100 * drops / max(1, drops + sum(per_stream) * elapsed), 1),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "ticks": metrics["ticks"] - ticks_before,
        "batch_mean": summary["batch_size"]["mean"],
        "tick_p50_ms": summary["tick_ms"]["p50"],
        "rss_start_mb": round(rss_start, 1),
        "rss_settled_mb": round(rss_settled, 1),
        "rss_end_mb": round(rss_end, 1),
        f"rss_every_{RSS_EVERY_S}s_mb": rss_samples,
        "states": sorted({s["state"] for s in after.values()}),
        "seconds": round(elapsed, 1),
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base_memory
        row["gpu_mb_per_stream"] = round(peak / n / 2**20, 2)
    row["sequential_fps"] = round(
        sequential_fps(model, args.device, n, args.iters, min(30.0, args.duration)), 1
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="4,16", help="comma-separated stream counts")
    parser.add_argument("--fps", type=float, default=10.0, help="frames/s each camera sends")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds per configuration")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--iters", type=int, default=2, help="M, iterations per frame")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--source", choices=("live", "file"), default="live")
    parser.add_argument(
        "--input-size",
        default=None,
        help="HxW the frames are resized to for the model (default: its own, 128x256); a "
        "small one measures the service's own cost per stream",
    )
    parser.add_argument(
        "--probesize",
        type=int,
        default=None,
        help="FFmpeg probesize of the live cameras (serve's --probesize; default FFmpeg's 5 MB, "
        "which each MPEG-TS camera fills as a buffer over its first minutes)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    tune_cpu_allocator()  # as `streamdeq serve` does: the same process settings as the service
    if args.threads:
        torch.set_num_threads(args.threads)
    model = resolve_model("mdeq-seg-tiny-synthetic", device=args.device).model
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in [int(v) for v in args.streams.split(",")]:
            row = run_config(model, args, n, Path(folder))
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json is not None:
        temporary = args.json.with_suffix(".tmp")
        temporary.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2, default=str
            )
        )
        os.replace(temporary, args.json)


if __name__ == "__main__":
    main()
