"""A live video stream on the loopback interface, for tests: an MPEG-TS encoding of some frames
served over TCP in small paced packets, as an encoder or camera would push it (FFmpeg's
``tcp://`` protocol reads it; no network beyond 127.0.0.1 is needed)."""

from __future__ import annotations

import io
import math
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Silence:
    """A step of a connection's script: send nothing for ``seconds``, the connection open."""

    seconds: float


#: Silent with the connection open until the server is closed: a camera that hangs.
HANG = Silence(math.inf)

Script = Sequence[bytes | Silence]


@contextmanager
def live_server(
    connections: Sequence[Script], pause_s: float = 0.002, down_s: float = 0.0
) -> Iterator[str]:
    """Serve one scripted connection per client, in order, all on one port; yields the
    ``tcp://`` URL. A script's bytes are sent CHUNK bytes at a time with ``pause_s`` between
    (a stream arriving over time), a :class:`Silence` pauses it; then the server closes the
    connection. Between connections the server is down (not listening: connections are
    refused) for ``down_s`` seconds, as a restarting encoder is; after the last one it stays
    down for good. Every wait is bounded, so the server thread always ends."""
    done = threading.Event()
    listener = [_listen(0)]
    port = listener[0].getsockname()[1]

    def play(connection: socket.socket, script: Script) -> None:
        for step in script:
            if isinstance(step, Silence):
                done.wait(timeout=min(step.seconds, 60))
                continue
            for start in range(0, len(step), CHUNK):
                if done.is_set():
                    return
                connection.sendall(step[start : start + CHUNK])
                time.sleep(pause_s)

    def serve() -> None:
        for number, script in enumerate(connections):
            connection = _accept(listener[0], done)
            if connection is None:  # nobody connected (the test failed first, or is done)
                return
            with connection, suppress(OSError):  # OSError: the reader went away
                play(connection, script)
            listener[0].close()
            if number == len(connections) - 1 or done.wait(timeout=down_s):
                return
            listener[0] = _listen(port)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        done.set()
        listener[0].close()
        thread.join(timeout=30)


@contextmanager
def live_stream(
    payload: bytes, pause_s: float = 0.002, stall_after: int | None = None
) -> Iterator[str]:
    """Serve ``payload`` to the first client that connects; yields its ``tcp://`` URL. The
    server sends CHUNK bytes at a time with a pause between (a stream arriving over time, not
    a file read at once), then closes the connection: the end of the broadcast. With
    ``stall_after`` it sends only that many bytes and then goes silent with the connection
    open, like a camera that hangs, until the context exits."""
    script = [payload] if stall_after is None else [payload[:stall_after], HANG]
    with live_server([script], pause_s) as url:
        yield url


def _accept(listener: socket.socket, done: threading.Event) -> socket.socket | None:
    """The next client, or None once ``done`` is set or after 30 s (a blocked accept() would
    not notice the listener being closed)."""
    deadline = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < deadline:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return None
        connection.settimeout(None)
        return connection
    return None


def _listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: any free port); the same port again right
    after closing it, as a restarted server binds it (SO_REUSEADDR)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    server.settimeout(0.1)  # accept() polls, to notice the end of the test
    return server
