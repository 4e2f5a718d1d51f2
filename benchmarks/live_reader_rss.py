"""Resident memory of N live-stream readers alone: no model, no service (not run by CI).

Why it exists: ``benchmarks/serve_load.py`` saw the service's RSS grow with 16 loopback tcp://
cameras (about 12-18 MB a minute over 5 minutes on this project's CPU machine) while Python's
own heap stayed flat (tracemalloc), and the same service fed by 16 looping *files* levelled
off within a minute. This script takes the model and the service out: N threads each read a
loopback MPEG-TS camera (the same paced servers, looping one clip over one connection) through
``streamdeq.data.open_video`` and drop the frames.

What it showed: the growth is FFmpeg's MPEG-TS demuxer filling a seek-back buffer of
``probesize`` bytes (5 MB by default) that it reserves on every input it cannot seek; RSS
climbs at the streams' byte rate until ~5 MB per stream have arrived, then falls back. Run it
for longer than 5 MB / the byte rate (about 7 minutes with these cameras) to see the plateau;
``benchmarks/pyav_live_rss.py`` isolates the cause with bare PyAV.

    python benchmarks/live_reader_rss.py --streams 16 --seconds 600 --every 20
"""

from __future__ import annotations

import argparse
import gc
import io
import sys
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import serve_load  # the cameras of the load benchmark

from streamdeq.data.video import open_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=140)
    parser.add_argument("--every", type=int, default=20, help="seconds between samples")
    args = parser.parse_args()
    servers = []
    for seed in range(args.streams):
        buffer = io.BytesIO()
        serve_load.encode(serve_load.frames(serve_load.CLIP_FRAMES, seed), 10, buffer, "mpegts")
        servers.append(serve_load.PacedServer(buffer.getvalue(), serve_load.CLIP_FRAMES / 10))
    frames = [0]

    def read(url: str) -> None:
        with open_video(url, timeout=5) as source:
            for _ in source:
                frames[0] += 1

    for server in servers:
        threading.Thread(target=read, args=(server.url,), daemon=True).start()
    tracemalloc.start()
    start = time.monotonic()
    print("seconds  rss_mb  python_heap_mb  frames_read")
    while time.monotonic() - start < args.seconds:
        time.sleep(args.every)
        gc.collect()
        heap = tracemalloc.get_traced_memory()[0] / 1e6
        print(
            f"{time.monotonic() - start:7.0f} {serve_load.rss_mb():7.1f} {heap:15.2f} "
            f"{frames[0]:12d}",
            flush=True,
        )
    for server in servers:
        server.close()


if __name__ == "__main__":
    main()
