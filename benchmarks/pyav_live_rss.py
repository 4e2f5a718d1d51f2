"""Resident memory of bare PyAV readers of live loopback MPEG-TS streams (nothing of streamdeq).

What it measures: N threads each ``av.open("tcp://127.0.0.1:PORT")`` a paced H.264 MPEG-TS
camera (a clip looped over one connection at ``--fps``, served by a *child process*, so the
servers' own memory is not in the number) and read it; the main thread samples this process's
VmRSS every ``--every`` seconds and at the end prints the least-squares slope in MB/min over the
samples after ``--settle`` seconds. One knob at a time isolates where the growth is:

* ``--mode demux|decode|ndarray``: only iterate packets / also decode / also ``to_ndarray``.
* ``--thread-type default|SLICE|FRAME|AUTO|NONE`` and ``--thread-count``: decoder threads.
* ``--gop N``: keyframe interval of the clip (1: intra-only).
* ``--option key=value`` (repeatable): FFmpeg input options, e.g. ``fflags=nobuffer``.
* ``--reopen-every S``: close and reopen each container every S seconds.
* ``--trim-every S``: call glibc ``malloc_trim(0)`` every S seconds (Linux/glibc only).
* ``--source file``: read the same MPEG-TS clip from a file, reopened at its end (unpaced).

What it showed (2026-11-30, PyAV 18.1 / FFmpeg 8.1): the slope equals the streams' byte rate
with or without a decoder, for every thread setting, with malloc_trim and with jemalloc; only
``probesize`` changes it. FFmpeg's MPEG-TS demuxer reserves a ``probesize``-byte (5 MB)
seek-back buffer on a non-seekable input at open and the reads fill it front to back, so RSS
climbs until ~5 MB per reader have arrived, then drops (FFmpeg shrinks the buffer): bounded, not
a leak. ``--fps 50 --gop 1`` shows the drop within about a minute.

Run it under other allocators with ``LD_PRELOAD`` / ``MALLOC_ARENA_MAX`` etc.::

    python benchmarks/pyav_live_rss.py --readers 4 --seconds 180
    python benchmarks/pyav_live_rss.py --readers 4 --seconds 180 --trim-every 10
    python benchmarks/pyav_live_rss.py --readers 4 --seconds 180 --mode demux
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction

import numpy as np

HEIGHT, WIDTH = 128, 256


def clip(count: int, seed: int, fps: float, gop: int | None) -> bytes:
    """An H.264 MPEG-TS of smoothly moving gradients (as benchmarks/serve_load.py makes)."""
    import av

    rows, cols = np.arange(HEIGHT)[:, None], np.arange(WIDTH)[None, :]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.options = {"tune": "zerolatency", "preset": "veryfast"}
        if gop is not None:
            stream.options |= {"g": str(gop), "keyint_min": str(gop)}
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        for t in range(count):
            image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            image[..., 0] = (cols * 2 + 5 * t + 37 * seed) % 256
            image[..., 1] = (rows * 3 + 2 * t) % 256
            image[..., 2] = (rows + cols + 11 * seed) % 256
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def send_paced(connection: socket.socket, payload: bytes, seconds: float, loop: bool) -> None:
    chunk = 7 * 188
    interval = seconds * chunk / len(payload)
    start, sent = time.monotonic(), 0
    while loop or sent < len(payload):
        offset = sent % len(payload)
        try:
            connection.sendall(payload[offset : offset + chunk])
        except OSError:
            return
        sent += min(chunk, len(payload) - offset)
        delay = start + (sent / chunk) * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def serve(args: argparse.Namespace) -> None:
    """Child process: one listening socket per reader; print the ports, serve until killed."""
    listeners = []
    for seed in range(args.readers):
        payload = clip(args.clip_frames, seed, args.fps, args.gop)
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def accept(listener=listener, payload=payload) -> None:
            while True:
                connection, _ = listener.accept()
                threading.Thread(
                    target=lambda c=connection: (
                        send_paced(c, payload, args.clip_frames / args.fps, not args.no_loop),
                        c.close(),
                    ),
                    daemon=True,
                ).start()

        threading.Thread(target=accept, daemon=True).start()
    print(" ".join(str(s.getsockname()[1]) for s in listeners), flush=True)
    while True:
        time.sleep(3600)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def malloc_trim():
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name)
    return getattr(libc, "malloc_trim", None)


def read(url: str, args: argparse.Namespace, counts: list[int], i: int, stop) -> None:
    import av

    options = dict(kv.split("=", 1) for kv in args.option)
    while not stop.is_set():
        container = av.open(url, options=options, timeout=5)
        stream = container.streams.video[0]
        if args.thread_type != "default":
            stream.codec_context.thread_type = args.thread_type
        if args.thread_count is not None:
            stream.codec_context.thread_count = args.thread_count
        opened = time.monotonic()
        try:
            for packet in container.demux(stream):
                if stop.is_set():
                    break
                if args.mode == "demux":
                    counts[i] += packet.size > 0
                else:
                    for frame in packet.decode():
                        if args.mode == "ndarray":
                            frame.to_ndarray(format="rgb24")
                        counts[i] += 1
                if args.reopen_every and time.monotonic() - opened > args.reopen_every:
                    break
        except av.FFmpegError as error:
            print(f"reader {i}: {error}", file=sys.stderr)
        finally:
            container.close()  # then open again: a new connection, or the file from the start


def slope(samples: list[tuple[float, float]], settle: float) -> float:
    points = [(t, r) for t, r in samples if t >= settle]
    if len(points) < 2:
        return float("nan")
    t, r = np.array(points).T
    return float(np.polyfit(t / 60, r, 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--every", type=float, default=10, help="seconds between RSS samples")
    parser.add_argument("--settle", type=float, default=30, help="slope ignores samples before")
    parser.add_argument("--mode", choices=("demux", "decode", "ndarray"), default="ndarray")
    parser.add_argument(
        "--thread-type", default="default", choices=("default", "SLICE", "FRAME", "AUTO", "NONE")
    )
    parser.add_argument("--thread-count", type=int, default=None)
    parser.add_argument("--gop", type=int, default=None, help="keyframe interval (default x264's)")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--clip-frames", type=int, default=60)
    parser.add_argument("--no-loop", action="store_true", help="send the clip once per connection")
    parser.add_argument("--option", action="append", default=[], help="FFmpeg input key=value")
    parser.add_argument("--reopen-every", type=float, default=0.0)
    parser.add_argument("--trim-every", type=float, default=0.0)
    parser.add_argument("--source", choices=("tcp", "file"), default="tcp")
    parser.add_argument("--label", default="")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    server = None
    if args.source == "tcp":
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", *sys.argv[1:]], stdout=subprocess.PIPE, text=True
        )
        urls = [f"tcp://127.0.0.1:{port}" for port in server.stdout.readline().split()]
    else:
        folder = tempfile.mkdtemp()
        urls = []
        for seed in range(args.readers):
            path = os.path.join(folder, f"cam{seed}.ts")
            with open(path, "wb") as file:
                file.write(clip(args.clip_frames, seed, args.fps, args.gop))
            urls.append(path)
    import av  # noqa: F401  (loaded before the first sample, as the readers will)

    trim = malloc_trim() if args.trim_every else None
    counts = [0] * args.readers
    stop = threading.Event()
    threads = [
        threading.Thread(target=read, args=(url, args, counts, i, stop), daemon=True)
        for i, url in enumerate(urls)
    ]
    for thread in threads:
        thread.start()
    print(f"# {args.label} argv={' '.join(sys.argv[1:])}", flush=True)
    print("seconds  rss_mb  frames", flush=True)
    samples = []
    start = next_sample = next_trim = time.monotonic()
    while (now := time.monotonic()) - start < args.seconds:
        if trim is not None and now >= next_trim:
            trim(0)
            next_trim += args.trim_every
        if now >= next_sample:
            samples.append((now - start, rss_mb()))
            print(f"{now - start:7.0f} {samples[-1][1]:7.1f} {sum(counts):7d}", flush=True)
            next_sample += args.every
        time.sleep(min(0.5, args.every, args.trim_every or 0.5))
    stop.set()
    print(
        f"RESULT {args.label} slope_mb_per_min={slope(samples, args.settle):.2f} "
        f"rss_first={samples[0][1]:.1f} rss_last={samples[-1][1]:.1f} frames={sum(counts)} "
        f"fps={sum(counts) / args.seconds:.1f}",
        flush=True,
    )
    if server is not None:
        server.kill()
    os._exit(0)  # readers may be blocked in a network read


if __name__ == "__main__":
    main()
