"""Load on ``streamdeq serve``'s engine: N cameras at F frames/s each through one Service.

CPU (default): each camera is a loopback TCP server sending an H.264 MPEG-TS at F frames/s
(paced by bytes, looping over one connection), read by the service like any tcp:// camera.
``--source file`` (the GPU run): each camera is a generated clip file played at its own rate,
looping, so 64 cameras need no 64 network servers.

Per configuration it reports: achieved frames/s per stream (mean, min), frames dropped as
stale (latest-only), p50/p99 of arrival-to-result latency, RSS at start and end (and of the
decoder processes at the end), the cores the serving process and its decoder processes kept
busy while measuring, ticks and mean batch size, and the throughput of the same streams run one by one through StreamDEQ
(round robin, one frame each in turn) on the same frames. On CUDA, the peak memory the
streams add, per stream (``torch.cuda.max_memory_allocated``). With ``--memory-every S``, every
S seconds: RSS split into anonymous and file-backed pages, glibc's heap (taken from the system,
in use, free inside it) and the largest recent batch, to tell a leak (in use grows) from the
allocator's high-water mark (taken grows, in use flat); ``--malloc-info DIR`` adds glibc's
per-arena XML. The harness holds no per-result memory (latencies go into a fixed histogram),
so what grows is the service's. Free heap pages are handed back every ``--release-every``
seconds, as ``streamdeq serve`` does (0: never).

    python benchmarks/serve_load.py --streams 4,16 --fps 10 --duration 600
    python benchmarks/serve_load.py --device cuda --source file --streams 16,64 --fps 30 \
        --duration 180 --json serve_gpu.json
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import io
import json
import os
import socket
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from streamdeq import StreamDEQ, tune_cpu_allocator
from streamdeq.cpu_allocator import RELEASE_EVERY_S, MemoryReleaser
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def heap_mb() -> dict[str, float]:
    """glibc's own account of its heap (all arenas): bytes taken from the system, in use by
    the program, and free inside the heap. RSS growing with ``in_use`` flat is the heap's
    high-water mark or fragmentation, not a leak. Empty off glibc or under another malloc."""
    try:
        mallinfo2 = _libc().mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    if info.arena == 0:  # another malloc (jemalloc, tcmalloc) preloaded: glibc's heap unused
        return {}
    mb = 2**20
    return {
        "heap": round(info.arena / mb, 1),
        "in_use": round(info.uordblks / mb, 1),
        "free": round(info.fordblks / mb, 1),
        "mmapped": round(info.hblkhd / mb, 1),
    }


class LatencyHistogram:
    """Latencies counted in 0.1 ms bins up to a minute, in memory allocated (and touched) once:
    a list of every latency grew this process by ~0.17 MB a minute with 16 cameras, which
    read as the service's own creep in a 25-minute RSS measurement."""

    BIN_MS = 0.1
    BINS = 600_000  # 60 s; later ones land in the last bin

    def __init__(self) -> None:
        self.counts = np.full(self.BINS, 0, np.int64)  # written now: resident from the start

    def add(self, values_ms: list[float]) -> None:
        if values_ms:
            bins = np.minimum((np.asarray(values_ms) / self.BIN_MS).astype(np.int64), self.BINS - 1)
            np.add.at(self.counts, bins, 1)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (nearest rank), to the bin's middle; None if nothing came."""
        total = int(self.counts.sum())
        if total == 0:
            return None
        rank = max(1, int(np.ceil(q / 100 * total)))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return round((index + 0.5) * self.BIN_MS, 1)


def rss_parts_mb() -> dict[str, float]:
    """RSS and the kernel's split of it: anonymous memory (heaps, Python's arenas, stacks) and
    pages of mapped files (the code of torch, FFmpeg, ... as it is first run)."""
    names = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    parts = {}
    with open("/proc/self/status") as status:
        for line in status:
            key = line.split(":")[0]
            if key in names:
                parts[names[key]] = round(int(line.split()[1]) / 1024, 1)
    return parts


def decoder_pids() -> list[str]:
    """The service's decoder processes (this process's children named streamdeq-decoder)."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue  # the thread ended meanwhile
        for pid in children:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # ended meanwhile
            if b"streamdeq-decoder" in command:
                pids.append(pid)
    return pids


def decoders_rss_mb() -> float:
    """RSS of the decoder processes, MB (the pages they share with this process included)."""
    total = 0.0
    for pid in decoder_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by this process and by its decoder processes."""
    own = os.times()
    decoders = 0.0
    for pid in decoder_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        decoders += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own.user + own.system, decoders


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, looked up once (``find_library`` runs ``ldconfig`` in a subprocess)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def dump_malloc_info(path: Path) -> None:
    """glibc's ``malloc_info`` XML (per arena: bytes taken, free chunks by size) into ``path``:
    which thread's arena grows. Nothing off glibc."""
    try:
        libc = _libc()
        fopen, fclose, malloc_info = libc.fopen, libc.fclose, libc.malloc_info
    except (OSError, AttributeError):
        return
    fopen.restype = ctypes.c_void_p
    fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    fclose.argtypes = (ctypes.c_void_p,)
    stream = fopen(str(path).encode(), b"w")
    if stream:
        malloc_info(0, stream)
        fclose(stream)


def _memory_sample(service: Service, seconds: float) -> dict:
    """RSS, glibc's heap account and the largest batch of the recent ticks: heap taken that
    grows while the memory in use stays flat is holes left by frees, not a leak."""
    return {
        "s": round(seconds),
        **rss_parts_mb(),
        **heap_mb(),
        "batch_max": service.summary()["batch_size"]["max"],
    }


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
        source_options=SourceOptions(timeout=5.0, probesize=args.probesize, hwaccel=args.hwaccel),
        stream_base=_base(model, args.input_size),
        decoder_processes=args.decoders,
    )
    service.start()
    releaser = MemoryReleaser(args.release_every) if args.release_every else None
    if releaser is not None:
        releaser.start()
    rss_start = rss_mb()
    for seed, source in enumerate(sources):
        service.add_stream(source, stream_id=f"cam{seed}", loop=True, persist=False)
    subscription = service.subscribe()
    time.sleep(args.warmup)
    before = {s["id"]: s for s in service.streams()}
    ticks_before = service.metrics()["ticks"]
    latencies = LatencyHistogram()
    rss_settled = rss_mb()  # every stream open and warm: what a leak would grow from
    rss_samples = [round(rss_settled, 1)]
    decoder_rss_samples = [round(decoders_rss_mb(), 1)]
    memory = [_memory_sample(service, 0.0)]
    cpu_start = cpu_seconds()
    start = next_sample = next_memory = time.monotonic()
    while time.monotonic() - start < args.duration:
        latencies.add([r["latency_ms"] for r in subscription.get(0.5)])
        now = time.monotonic()
        if now >= next_sample + RSS_EVERY_S:
            next_sample += RSS_EVERY_S
            rss_samples.append(round(rss_mb(), 1))
            decoder_rss_samples.append(round(decoders_rss_mb(), 1))
        if args.memory_every and now >= next_memory + args.memory_every:
            next_memory += args.memory_every
            memory.append(_memory_sample(service, now - start))
            if args.malloc_info is not None:
                args.malloc_info.mkdir(parents=True, exist_ok=True)
                dump_malloc_info(args.malloc_info / f"{n}-{memory[-1]['s']:05d}.xml")
            print(json.dumps({"streams": n} | memory[-1]), file=sys.stderr, flush=True)
    elapsed = time.monotonic() - start
    cpu_end = cpu_seconds()
    after = {s["id"]: s for s in service.streams()}
    metrics = service.metrics()
    summary = service.summary()
    rss_end = rss_mb()
    decoders_rss_end = decoders_rss_mb()
    service.stop()
    if releaser is not None:
        releaser.stop()
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
        "latency_p50_ms": latencies.percentile(50),
        "latency_p99_ms": latencies.percentile(99),
        "ticks": metrics["ticks"] - ticks_before,
        "batch_mean": summary["batch_size"]["mean"],
        "tick_p50_ms": summary["tick_ms"]["p50"],
        "rss_start_mb": round(rss_start, 1),
        "rss_settled_mb": round(rss_settled, 1),
        "rss_end_mb": round(rss_end, 1),
        "decoders": service.decoder_processes,
        "hwaccel": args.hwaccel,
        "rss_decoders_end_mb": round(decoders_rss_end, 1),
        # cores busy while measuring: the serving process, and its decoder processes
        "cpu_cores_service": round((cpu_end[0] - cpu_start[0]) / elapsed, 2),
        "cpu_cores_decoders": round((cpu_end[1] - cpu_start[1]) / elapsed, 2),
        f"rss_every_{RSS_EVERY_S}s_mb": rss_samples,
        f"rss_decoders_every_{RSS_EVERY_S}s_mb": decoder_rss_samples,
        "release_every_s": args.release_every,
        "memory": memory if args.memory_every else memory[:1],
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
    parser.add_argument(
        "--release-every",
        type=float,
        default=RELEASE_EVERY_S,
        help="seconds between hand-backs of free heap pages, as `streamdeq serve` does (0: "
        "never, as before it did)",
    )
    parser.add_argument(
        "--memory-every",
        type=float,
        default=0.0,
        help="also sample RSS, glibc's heap (taken / in use / free) and the recent largest "
        "batch every this many seconds, printed as they come (0: only at the start)",
    )
    parser.add_argument(
        "--malloc-info",
        type=Path,
        default=None,
        help="with --memory-every: also write glibc's malloc_info XML (per arena) into this "
        "folder at each sample",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--decoders",
        type=int,
        default=None,
        help="decoder processes of the service at most (0: the sources are read on threads; "
        "default: the service's)",
    )
    parser.add_argument(
        "--hwaccel",
        default=None,
        help="decode the cameras on this hardware decoder (serve's --hwaccel, e.g. cuda)",
    )
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
