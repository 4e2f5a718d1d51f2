"""Soak test of ``streamdeq run`` on a live stream that misbehaves at random (not run by CI).

A loopback server (127.0.0.1 only) encodes frames one by one as intra-only H.264 in MPEG-TS and
stamps each frame's number into its pixels (16 bits and a check byte, as pairs of light/dark
cells in the bottom-right corner, so the overlay's colours cannot flip a bit). At random it
drops a frame's bytes, overwrites them with garbage, stalls (shorter than --timeout), or closes
the connection and stays down for a moment before listening again on the same port.

``streamdeq run URL --reconnect ... --out ... --stats ...`` runs on the bundled model at a small
size. The script samples the process's VmRSS (/proc/PID/status) while it runs, then reads the
stamps back out of the overlay video and checks: the process stayed connected to the end of the broadcast (it
reconnected after every restart) and then ended by itself with exit 0, RSS
at the end is close to RSS at the start, the stats have one row per overlay frame, and every
frame that was sent intact (its bytes whole and unaltered) is in the outputs.

One exception, counted apart: the first intact frame sent after a garbage burst on the same
connection (frames dropped in between send nothing). MPEG-TS has no framing but the 0x47 byte that starts each 188-byte packet, and
FFmpeg's demuxer, resynchronising after garbage, takes the first 0x47 it meets as a packet start
without checking the next one. When the garbage ends in such a byte, the packet read from there
swallows the start of the next frame's first packet, the one that opens its PES; the rest of that
frame's packets are then appended to the previous frame's (FFmpeg logs "Packet corrupt") and the
frame is never decoded. No reader above the demuxer can recover it, so such frames are reported
as ``intact_after_garbage_lost`` and do not fail the check.

    python benchmarks/soak_live.py --frames 2000 --json soak.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT = 256, 96
CELL = 8  # a bit is two CELL x CELL squares side by side: light-dark is 1, dark-light is 0
BITS_PER_ROW = 8


# ----------------------------------------------------------------------------- the stamp


def stamp_bytes(number: int) -> list[int]:
    low, high = number & 0xFF, (number >> 8) & 0xFF
    return [high, low, high ^ low ^ 0x5A]


def stamped_frame(number: int) -> np.ndarray:
    """(HEIGHT, WIDTH, 3) uint8: a moving gradient with ``number`` stamped bottom-right."""
    x = np.arange(WIDTH)[None, :, None]
    y = np.arange(HEIGHT)[:, None, None]
    image = (40 + 0.5 * x + 0.8 * y + 2 * (number % 50) + np.array([0, 30, 60])) % 256
    image = image.astype(np.uint8)
    top, left = HEIGHT - 3 * CELL, WIDTH - 2 * CELL * BITS_PER_ROW
    for row, byte in enumerate(stamp_bytes(number)):
        for bit in range(BITS_PER_ROW):
            one = (byte >> (BITS_PER_ROW - 1 - bit)) & 1
            y0, x0 = top + row * CELL, left + 2 * bit * CELL
            image[y0 : y0 + CELL, x0 : x0 + CELL] = 255 if one else 0
            image[y0 : y0 + CELL, x0 + CELL : x0 + 2 * CELL] = 0 if one else 255
    return image


def read_stamp(image: np.ndarray) -> int | None:
    """The number stamped in ``image`` (an overlay frame), None if the check byte disagrees."""
    luma = image.astype(np.float32).mean(axis=2)
    top, left = HEIGHT - 3 * CELL, WIDTH - 2 * CELL * BITS_PER_ROW
    values = []
    for row in range(3):
        byte = 0
        for bit in range(BITS_PER_ROW):
            y0, x0 = top + row * CELL + 2, left + 2 * bit * CELL + 2  # cell centres: no blur
            first = luma[y0 : y0 + CELL - 4, x0 : x0 + CELL - 4].mean()
            second = luma[y0 : y0 + CELL - 4, x0 + CELL : x0 + 2 * CELL - 4].mean()
            byte = (byte << 1) | int(first > second)
        values.append(byte)
    high, low, check = values
    return (high << 8 | low) if check == high ^ low ^ 0x5A else None


# ----------------------------------------------------------------------------- the server


class _Sink:
    """A file-like object the muxer writes into; ``take`` empties it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


class Misbehaving:
    """Sends ``frames`` stamped frames at ``fps`` to whoever connects, misbehaving at random.

    Per frame: drop its bytes (p_drop), overwrite them with garbage (p_garbage), stall before it
    (p_stall, 0.2..stall_max s), or, after it, close the connection and stay down 0.2..1.5 s
    (p_restart). ``intact`` collects the numbers of frames sent whole and unaltered.
    """

    def __init__(self, frames: int, fps: float, seed: int, stall_max: float) -> None:
        self.frames, self.fps, self.stall_max = frames, fps, stall_max
        self.random = random.Random(seed)
        self.p_drop, self.p_garbage, self.p_stall, self.p_restart = 0.01, 0.01, 0.003, 0.002
        self.intact: list[int] = []
        self.after_garbage: set[int] = set()  # intact frames sent right after a garbage burst
        self.garbage_last = False  # the last bytes sent on this connection were garbage
        self.reader_left_at: int | None = None  # the frame being sent when the reader hung up
        self.counts = {"dropped": 0, "garbage": 0, "stalls": 0, "restarts": 0}
        self.log: list[tuple[int, str]] = []  # (frame number, fault) in order
        self.done = threading.Event()
        self.listener = self._listen(0)
        self.port = self.listener.getsockname()[1]

    @staticmethod
    def _listen(port: int) -> socket.socket:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        server.settimeout(60)
        return server

    def serve(self) -> None:
        number = 0
        while number < self.frames and not self.done.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                number = self._connection(connection, number)
            self.listener.close()
            if number >= self.frames:
                return  # the broadcast is over: the server stays down
            time.sleep(self.random.uniform(0.2, 1.5))
            self.listener = self._listen(self.port)

    def _connection(self, connection: socket.socket, number: int) -> int:
        """Frames from ``number`` on until a restart or the end; returns the next number."""
        sink = _Sink()
        self.garbage_last = False  # a new connection: the demuxer starts in sync
        try:
            with av.open(sink, "w", format="mpegts", options={"flush_packets": "1"}) as container:
                rate = Fraction(self.fps).limit_denominator(1000)
                stream = container.add_stream("libx264", rate=rate)
                stream.options = {"tune": "zerolatency", "x264-params": "keyint=1"}  # intra only
                stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
                while number < self.frames and not self.done.is_set():
                    self._send(connection, container, stream, sink, number)
                    number += 1
                    time.sleep(1 / self.fps)
                    if self.random.random() < self.p_restart:
                        self.counts["restarts"] += 1
                        self.log.append((number - 1, "restart after"))
                        break
            connection.sendall(sink.take())  # what closing the muxer flushed
        except OSError:  # the reader went away: the broadcast is over
            self.reader_left_at = number
            return self.frames
        return number

    def _send(self, connection, container, stream, sink: _Sink, number: int) -> None:
        image = av.VideoFrame.from_ndarray(stamped_frame(number), format="rgb24")
        container.mux(stream.encode(image))
        data = sink.take()
        fate = self.random.random()
        if fate < self.p_drop:
            self.counts["dropped"] += 1
            self.log.append((number, "dropped"))
            return
        if fate < self.p_drop + self.p_garbage:
            self.counts["garbage"] += 1
            self.log.append((number, "garbage"))
            connection.sendall(self.random.randbytes(len(data)))
            self.garbage_last = True
            return
        if fate < self.p_drop + self.p_garbage + self.p_stall:
            self.counts["stalls"] += 1
            time.sleep(self.random.uniform(0.2, self.stall_max))
        connection.sendall(data)
        self.intact.append(number)
        if self.garbage_last:
            self.after_garbage.add(number)
        self.garbage_last = False


# ----------------------------------------------------------------------------- the run


def vm_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000, help="frames the server sends")
    parser.add_argument("--fps", type=float, default=50.0, help="send rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="32", help="streamdeq run --size")
    parser.add_argument("--timeout", type=float, default=3.0, help="streamdeq run --timeout")
    parser.add_argument("--reconnect", type=float, default=5.0, help="streamdeq run --reconnect")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    server = Misbehaving(args.frames, args.fps, args.seed, stall_max=args.timeout / 2)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as folder:
        out, stats = Path(folder) / "out.mp4", Path(folder) / "stats.csv"
        command = [sys.executable, "-m", "streamdeq", "run", f"tcp://127.0.0.1:{server.port}"]
        command += ["--iters", "1", "--threads", "1", "--device", "cpu", "--size", args.size]
        command += ["--timeout", str(args.timeout), "--reconnect", str(args.reconnect)]
        command += ["--out", str(out), "--stats", str(stats)]
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ | {"OMP_NUM_THREADS": "1"},
        )
        samples: list[tuple[float, int]] = []
        while process.poll() is None:
            rss = vm_rss_kib(process.pid)
            if rss is not None:
                samples.append((time.monotonic() - started, rss))
            time.sleep(1.0)
        stdout, stderr = process.communicate()
        runtime = time.monotonic() - started
        server.done.set()
        rows = list(csv.DictReader(stats.open(newline=""))) if stats.exists() else []
        stamps = []
        if out.exists():
            with av.open(str(out)) as container:
                stamps = [
                    read_stamp(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)
                ]
    # RSS once the model is loaded and the allocator has warmed up (a quarter into the run)
    # against the last sample: what a leak would grow
    settled = [rss for t, rss in samples if t >= 0.25 * runtime] or [0]
    seen = {stamp for stamp in stamps if stamp is not None}
    lost = sorted(set(server.intact) - seen)
    collateral = [number for number in lost if number in server.after_garbage]
    missing = [number for number in lost if number not in server.after_garbage]
    figures = {
        "command": " ".join(command[1:]),
        "exit_code": process.returncode,
        "runtime_s": round(runtime, 1),
        "frames_sent": args.frames,
        "reader_left_at": server.reader_left_at,
        "faults": server.counts,
        "frames_intact": len(server.intact),
        "stats_rows": len(rows),
        "overlay_frames": len(stamps),
        "stamps_unreadable": sum(stamp is None for stamp in stamps),
        "intact_in_outputs": len(set(server.intact) & seen),
        "intact_after_garbage": len(server.after_garbage),
        "intact_after_garbage_lost": len(collateral),
        "intact_missing": missing[:20],
        "faults_near_missing": [
            [entry for entry in server.log if abs(entry[0] - number) <= 2]
            for number in missing[:20]
        ],
        "dropped_reported": sum(int(row["dropped_before"]) for row in rows),
        "reconnect_rows": sum(row["reset"] == "reconnect" for row in rows),
        "rss_kib_settled_start": settled[0],
        "rss_kib_end": settled[-1],
        "rss_kib_max": max(rss for _, rss in samples) if samples else 0,
        "rss_kib_by_decile": [samples[len(samples) * k // 10][1] for k in range(10)]
        if samples
        else [],
        "stderr_tail": stderr.strip().splitlines()[-3:],
        "summary": stdout.strip().splitlines(),
    }
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = (
        process.returncode == 0
        and server.reader_left_at is None
        and not missing
        and len(rows) == len(stamps)
        and settled[-1] <= settled[0] * 1.1
    )
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
