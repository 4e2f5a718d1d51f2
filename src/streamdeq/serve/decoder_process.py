"""The decoder process: reads many sources, each on its own thread, into shared-memory slots.

Why processes: in the serving process every camera's reader thread takes Python's lock (the
GIL) several times a frame, and with dozens of cameras at 30 frames/s the engine spends much of
each tick waiting for it; decoding also needs cores of its own. Here each source runs the same
:class:`~streamdeq.serve.sources.SourceReader` as in the serving process (same pacing, looping,
reconnection and protocol whitelist), and its frames go into a :class:`FrameSlot` the serving
process created for it; a byte on the notification pipe wakes the engine.

Messages to the serving process: ``("need", id, h, w)`` when a source needs a slot for
frames of a size (its first frame, or a new size after a reconnection); ``("status", {id:
(state, error, delivered, lost, reconnects, latest_index, size)})`` for the sources whose
status changed, at most every ``STATUS_EVERY_S``. Commands from it: ``("add", id, source,
loop, options)``, ``("slot", id, name, h, w, lock_offset)``, ``("remove", id)`` and
``("quit",)`` (end of the connection: the same).

This module imports no torch (the serving process starts it without the package's ``__init__``
files, which do): a decoder process costs FFmpeg and numpy only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from multiprocessing.connection import Connection

from .frame_slots import FrameSlot, RangeLock
from .sources import Arrival, SourceOptions, SourceReader

STATUS_EVERY_S = 0.1
#: how long "quit" waits for the reader threads (each ends after its read in progress)
QUIT_WAIT_S = 1.0


class _Source:
    """One source in the decoder process: its reader thread and the slot its frames go to."""

    def __init__(self, worker: _Worker, source_id: str, reader: SourceReader) -> None:
        self.worker, self.id, self.reader = worker, source_id, reader
        self.slot: FrameSlot | None = None
        self.asked: tuple[int, int] | None = None  # the size a slot was asked for
        self.pending: Arrival | None = None  # a frame waiting for its slot
        self.lock = threading.Lock()
        self.sent: tuple | None = None

    def forward(self) -> None:
        """The reader's on_frame: move its frame into the slot (reader thread)."""
        arrival = self.reader.take()
        if arrival is None:
            return
        size = (arrival.frame.height, arrival.frame.width)
        with self.lock:
            if self.slot is None or (self.slot.height, self.slot.width) != size:
                self.pending = arrival
                if self.asked != size:
                    self.asked = size
                    self.worker.send(("need", self.id, *size))
                return
            self._publish(arrival)
        self.worker.notify()

    def attach(self, name: str, height: int, width: int, lock_offset: int) -> None:
        """A slot came from the serving process (main thread)."""
        with self.lock:
            if self.asked != (height, width):
                return  # asked for another size since: a newer slot is on its way
            try:
                slot = FrameSlot.attach(
                    name, height, width, RangeLock(self.worker.lock_fd, lock_offset)
                )
            except FileNotFoundError:
                return  # removed meanwhile
            if self.slot is not None:
                self.slot.close()
            self.slot = slot
            arrival, self.pending = self.pending, None
            if arrival is not None:
                self._publish(arrival)
        if arrival is not None:
            self.worker.notify()

    def _publish(self, arrival: Arrival) -> None:
        frame = arrival.frame
        self.slot.publish(
            frame.image,
            (
                arrival.index,
                arrival.timestamp,
                arrival.arrived_at,
                float(arrival.restarted),
                frame.dropped_before,
                float(frame.damaged),
                float(frame.reconnected),
            ),
        )

    def status(self) -> tuple:
        r = self.reader
        return (r.state, r.error, r.delivered, r.lost, r.reconnects, r.latest_index, r.size)

    def close(self) -> None:
        with self.lock:
            if self.slot is not None:
                self.slot.close()
                self.slot = None


class _Worker:
    def __init__(self, connection: Connection, notify_fd: int, lock_fd: int) -> None:
        self.connection = connection
        self.notify_fd = notify_fd
        os.set_blocking(notify_fd, False)
        self.lock_fd = lock_fd  # never closed: closing any fd of it drops this process's locks
        self.sources: dict[str, _Source] = {}
        self._send_lock = threading.Lock()

    def send(self, message: tuple) -> None:
        with self._send_lock:
            self.connection.send(message)

    def notify(self) -> None:
        # a full pipe holds unread notifications already: the engine will wake anyway
        with contextlib.suppress(BlockingIOError):
            os.write(self.notify_fd, b"\0")

    def run(self) -> None:
        next_status = time.monotonic()
        try:
            while True:
                waiting = self.connection.poll(max(0.0, next_status - time.monotonic()))
                if waiting and not self.handle(self.connection.recv()):
                    return
                if time.monotonic() >= next_status:
                    self.send_status()
                    next_status = time.monotonic() + STATUS_EVERY_S
        except (EOFError, OSError):
            return  # the serving process is gone
        finally:
            self.stop_all()

    def handle(self, message: tuple) -> bool:
        kind, *rest = message
        if kind == "add":
            source_id, source, loop, options = rest
            self.remove(source_id)
            holder: list[_Source] = []
            reader = SourceReader(
                source,
                loop=loop,
                options=SourceOptions(**options),
                on_frame=lambda: holder[0].forward(),
            )
            holder.append(_Source(self, source_id, reader))
            self.sources[source_id] = holder[0]
            reader.start()
        elif kind == "slot":
            source_id, name, height, width, lock_offset = rest
            if (entry := self.sources.get(source_id)) is not None:
                entry.attach(name, height, width, lock_offset)
        elif kind == "remove":
            self.remove(rest[0])
        elif kind == "quit":
            return False
        return True

    def remove(self, source_id: str) -> None:
        entry = self.sources.pop(source_id, None)
        if entry is None:
            return
        entry.reader.stop()

        def close_when_done() -> None:  # the read in progress ends within the source timeout
            entry.reader.join(entry.reader.options.timeout + 1.0)
            entry.close()

        threading.Thread(target=close_when_done, daemon=True).start()

    def send_status(self) -> None:
        changed = {}
        for entry in self.sources.values():
            if entry.reader.state in ("ended", "failed") and entry.slot is not None:
                entry.close()  # its last frame is in the slot; the serving process frees it
            status = entry.status()
            if status != entry.sent:
                entry.sent = changed[entry.id] = status
        if changed:
            self.send(("status", changed))

    def stop_all(self) -> None:
        entries = list(self.sources.values())
        for entry in entries:
            entry.reader.stop()
        deadline = time.monotonic() + QUIT_WAIT_S
        for entry in entries:
            entry.reader.join(max(0.0, deadline - time.monotonic()))


def main(connection_fd: int, notify_fd: int, lock_fd: int) -> None:
    """The decoder process's body: serve commands until told to quit or the parent goes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the serving process's to handle
    _Worker(Connection(connection_fd), notify_fd, lock_fd).run()
