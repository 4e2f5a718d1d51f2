"""A live video stream on the loopback interface, for tests: an MPEG-TS encoding of some frames
served over TCP in small paced packets, as an encoder or camera would push it (FFmpeg's
``tcp://`` protocol reads it; no network beyond 127.0.0.1 is needed)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction

import av
import numpy as np

#: MPEG-TS is sent in 188-byte packets; 7 of them is what UDP/TCP streamers usually send at once
CHUNK = 7 * 188


def mpegts_bytes(frames: Sequence[np.ndarray], fps: int) -> bytes:
    """``frames`` ((H, W, 3) uint8) as an H.264 MPEG-TS, encoded for low latency."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.options = {"tune": "zerolatency", "crf": "0"}
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


@contextmanager
def live_stream(
    payload: bytes, pause_s: float = 0.002, stall_after: int | None = None
) -> Iterator[str]:
    """Serve ``payload`` to the first client that connects; yields its ``tcp://`` URL. The
    server sends CHUNK bytes at a time with a pause between (a stream arriving over time, not
    a file read at once), then closes the connection: the end of the broadcast. With
    ``stall_after`` it sends only that many bytes and then goes silent with the connection
    open, like a camera that hangs, until the context exits."""
    done = threading.Event()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(30)

    def serve() -> None:
        try:
            connection, _ = server.accept()
        except OSError:  # nobody connected (the test failed first)
            return
        with connection:
            sent = payload if stall_after is None else payload[:stall_after]
            for start in range(0, len(sent), CHUNK):
                try:
                    connection.sendall(sent[start : start + CHUNK])
                except OSError:  # the reader went away
                    return
                time.sleep(pause_s)
            if stall_after is not None:
                done.wait(timeout=60)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        server.close()
        thread.join(timeout=30)
