"""Sources decoded in a few worker processes, taken by the engine from shared memory.

Why: with threads, dozens of cameras at 30 frames/s hold Python's lock (the GIL) so often that
the engine's ticks slow down by half or more even on a machine with cores to spare, and the
decoding itself needs those cores. A :class:`DecoderPool` starts ``processes`` decoder
processes (``decoder_process.py``: FFmpeg and numpy, no torch), spreads the sources over them
and gives the service a :class:`ProcessSourceReader` per source with the interface of
:class:`~streamdeq.serve.sources.SourceReader`: the same states, counters and latest-only
:meth:`~ProcessSourceReader.take`.

A decoder process that dies (FFmpeg crashing on a hostile stream, say) takes only its own
sources with it, and only for a moment: the pool starts a new one (after a backoff when they
keep dying) and reopens them there; each shows "reconnecting" meanwhile and its next frame
starts a new shot.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection, wait
from pathlib import Path

from ..data import VideoFrame
from ..errors import SettingsError
from ..validation import check_int
from .frame_slots import FrameSlot, RangeLock, SharedMemoryFull
from .sources import Arrival, ReaderState, SourceOptions

# Runs in the new process (its arguments in the environment, so that ``ps`` shows a short
# command ending in "streamdeq-decoder"): the parent's import path, and the package's modules
# without their package __init__ files (which import torch: seconds and ~200 MB a process).
_BOOTSTRAP = """import json, os, sys, types
args = json.loads(os.environ.pop("STREAMDEQ_DECODER"))
sys.path[:] = args["path"]
for name, folder in (("streamdeq", ""), ("streamdeq.data", "data"), ("streamdeq.serve", "serve")):
    sys.modules[name] = types.ModuleType(name)
    sys.modules[name].__path__ = [os.path.join(args["package"], folder)]
from streamdeq.serve.decoder_process import main
main(args["connection"], args["notify"], args["locks"])
"""
_PACKAGE = Path(__file__).resolve().parents[1]
#: the shortest time between two wake-ups of the engine: frames arriving closer than this are
#: taken by the same tick anyway, and each wake-up costs the engine a turn of the GIL
MIN_WAKE_GAP_S = 0.001
#: a decoder process that lived at least this long before dying is restarted at once
HEALTHY_S = 10.0
#: a new decoder process is started when each running one reads this many sources
SOURCES_PER_PROCESS = 16
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
FINISHED = ("ended", "failed")  # states a source does not leave
log = logging.getLogger(__name__)


class _Decoder:
    """One decoder process as the pool sees it."""

    def __init__(self, pool: DecoderPool, backoff: float = FIRST_BACKOFF_S) -> None:
        self.backoff = backoff  # how long to wait before a new one if this one dies young
        parent, child = socket.socketpair()
        notify_read, notify_write = os.pipe()
        args = {
            "path": sys.path,
            "package": str(_PACKAGE),
            "connection": child.fileno(),
            "notify": notify_write,
            "locks": pool.lock_fd,
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, "streamdeq-decoder"],
                env=os.environ | {"STREAMDEQ_DECODER": json.dumps(args)},
                pass_fds=(child.fileno(), notify_write, pool.lock_fd),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the serving process only
            )
        except BaseException:
            parent.close()
            os.close(notify_read)
            raise
        finally:
            child.close()
            os.close(notify_write)
        self.connection = Connection(parent.detach())
        self.notify = notify_read
        self.started = time.monotonic()
        self.readers: dict[str, ProcessSourceReader] = {}
        self._send_lock = threading.Lock()

    def open(self, reader: ProcessSourceReader) -> None:
        """Have the process read ``reader``'s source (registered in ``readers`` already)."""
        self.send(("add", reader.id, reader.source, reader.loop, asdict(reader.options)))

    def send(self, message: tuple) -> None:
        try:
            with self._send_lock:
                self.connection.send(message)
        except OSError:
            pass  # the process is gone: the pool's watcher restarts it and re-adds its sources

    def close(self) -> None:
        self.connection.close()
        os.close(self.notify)


def _reading(decoder: _Decoder) -> int:
    """Sources a decoder process is still reading (one that ended or failed costs nothing)."""
    return sum(reader.state not in FINISHED for reader in decoder.readers.values())


def auto_processes() -> int:
    """Decoder processes at most by default: a quarter of the CPU cores (1 to 8), the rest
    left to the engine (torch's threads, the web server); none off POSIX systems (the
    hand-over needs their file locks and descriptor passing)."""
    if os.name != "posix":
        return 0
    return max(1, min(8, (os.cpu_count() or 1) // 4))


class DecoderPool:
    """Up to ``processes`` decoder processes shared by the sources of one service.

    A process is started when the first source comes and another whenever each running one
    reads ``SOURCES_PER_PROCESS`` sources, up to ``processes``; a source goes to the process
    with the fewest.

    Args:
        processes: the most decoder processes (each hosts many sources, one thread each).
        on_frame: called (from the pool's thread) when new frames are ready, at most once per
            ``MIN_WAKE_GAP_S``.
    """

    def __init__(self, processes: int, on_frame: Callable[[], None] = lambda: None) -> None:
        check_int("decoder processes", processes)
        if os.name != "posix":
            raise SettingsError("decoder processes need a POSIX system; decode on threads (0)")
        self.processes = processes
        self.restarts = 0  # decoder processes started again after they died
        self._on_frame = on_frame
        # the file the slots' locks are on (made with the first process, its name removed at
        # once: the processes share it by descriptor, so a killed server leaves nothing), kept
        # open to the end: closing any descriptor of it drops this process's locks
        self.lock_fd = -1
        self._lock_offsets = itertools.count()
        self._decoders: list[_Decoder] = []
        # (when, the sources of a dead decoder process, the backoff of the next one)
        self._restart_due: list[tuple[float, dict[str, ProcessSourceReader], float]] = []
        self._lock = threading.Lock()
        self._closing = False
        self._ids = itertools.count()
        self._thread = threading.Thread(target=self._watch, name="decoder pool", daemon=True)
        self._wakeup_read = self._wakeup_write = -1  # wakes the thread when a process starts

    def reader(self, source: str, *, loop: bool, options: SourceOptions) -> ProcessSourceReader:
        """A reader of ``source`` decoded in one of the pool's processes (from its start())."""
        return ProcessSourceReader(self, f"s{next(self._ids)}", source, loop=loop, options=options)

    def close(self, timeout: float = 2.0) -> None:
        """Stop every decoder process (at most ``timeout`` s, then they are killed) and free
        the shared memory."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            decoders, self._decoders = self._decoders, []
        started = self._thread.ident is not None
        if started:
            os.write(self._wakeup_write, b"\0")
        for decoder in decoders:
            decoder.send(("quit",))
        deadline = time.monotonic() + timeout
        for decoder in decoders:
            try:
                decoder.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                decoder.process.kill()
                decoder.process.wait()
        if self._thread.is_alive():
            self._thread.join(1.0)
        for decoder in decoders:
            for reader in decoder.readers.values():
                reader._drop_slot()
            decoder.close()
        if started:
            os.close(self._wakeup_read)
            os.close(self._wakeup_write)
            os.close(self.lock_fd)

    # ------------------------------------------------------------------ readers (any thread)

    def _add(self, reader: ProcessSourceReader) -> None:
        with self._lock:
            if self._closing:
                return
            if self._thread.ident is None:  # the first source: files, pipes and the thread
                self.lock_fd, path = tempfile.mkstemp(prefix="streamdeq-slots-")
                os.unlink(path)
                self._wakeup_read, self._wakeup_write = os.pipe()
                self._thread.start()
            decoder = min(self._decoders, key=_reading, default=None)
            running = len(self._decoders) + len(self._restart_due)
            if decoder is None or (
                _reading(decoder) >= SOURCES_PER_PROCESS and running < self.processes
            ):
                decoder = _Decoder(self)
                self._decoders.append(decoder)
                os.write(self._wakeup_write, b"\0")  # the watcher waits on its pipes too
            decoder.readers[reader.id] = reader
            reader._decoder = decoder
        decoder.open(reader)

    def _remove(self, reader: ProcessSourceReader) -> None:
        with self._lock:
            decoder = reader._decoder
            if decoder is not None:
                decoder.readers.pop(reader.id, None)
            for _, readers, _ in self._restart_due:
                readers.pop(reader.id, None)
        if decoder is not None:
            decoder.send(("remove", reader.id))
        reader._drop_slot()

    # ------------------------------------------------------------------ the pool's thread

    def _watch(self) -> None:
        while not self._closing:
            try:
                self._watch_once()
            except Exception:  # a bug must not end the thread: the sources would freeze
                log.exception("streamdeq serve: the decoder pool's thread failed; it goes on")
                time.sleep(0.1)

    def _watch_once(self) -> None:
        """Wait for messages and frames of the decoder processes (0.2 s at most), handle them."""
        with self._lock:
            decoders = list(self._decoders)
        by_object = {d.connection: d for d in decoders} | {d.notify: d for d in decoders}
        by_object[self._wakeup_read] = None
        timeout = 0.2
        if self._restart_due:
            first = min(due for due, _, _ in self._restart_due)
            timeout = max(0.0, min(first - time.monotonic(), timeout))
        ready = wait(list(by_object), timeout)
        if self._wakeup_read in ready:  # a decoder process was added
            ready.remove(self._wakeup_read)
            os.read(self._wakeup_read, 4096)
        lost = {by_object[r] for r in ready if r is by_object[r].connection}
        lost = {d for d in lost if not self._receive(d)}
        woke = False
        for r in ready:  # after the messages: a slot the frame went into is in place
            decoder = by_object[r]
            if r is decoder.notify and decoder not in lost:
                woke |= bool(os.read(decoder.notify, 65536))
        for decoder in lost:
            self._lost(decoder)
        self._restart_if_due()
        if woke:
            self._on_frame()
            time.sleep(MIN_WAKE_GAP_S)

    def _receive(self, decoder: _Decoder) -> bool:
        """Handle the messages waiting from a decoder; False when it is gone."""
        try:
            while decoder.connection.poll():
                self._handle(decoder, decoder.connection.recv())
        except (EOFError, OSError):
            return False
        return True

    def _handle(self, decoder: _Decoder, message: tuple) -> None:
        kind, *rest = message
        if kind == "status":
            for source_id, status in rest[0].items():
                if (reader := decoder.readers.get(source_id)) is not None:
                    reader._set_status(status)
            return
        if kind != "need":
            return
        source_id, height, width = rest
        if (reader := decoder.readers.get(source_id)) is None or self._closing:
            return
        offset = next(self._lock_offsets)
        try:
            slot = FrameSlot.create(height, width, RangeLock(self.lock_fd, offset))
        except SharedMemoryFull as error:  # this source cannot be served this way: say so
            with self._lock:
                decoder.readers.pop(source_id, None)
            decoder.send(("remove", source_id))
            reader._failed(str(error))
            return
        reader._set_slot(slot)
        decoder.send(("slot", source_id, slot.name, height, width, offset))

    def _lost(self, decoder: _Decoder) -> None:
        """A decoder process died: its sources wait for a new one (after a backoff when it
        died young); those that had ended or failed stay so (a file is not played again)."""
        with self._lock:
            if self._closing or decoder not in self._decoders:
                return
            self._decoders.remove(decoder)
            readers = {
                source_id: reader
                for source_id, reader in decoder.readers.items()
                if reader.state not in FINISHED
            }
            if time.monotonic() - decoder.started >= HEALTHY_S:
                due, backoff = time.monotonic(), FIRST_BACKOFF_S
            else:
                due = time.monotonic() + decoder.backoff
                backoff = min(2 * decoder.backoff, MAX_BACKOFF_S)
            self._restart_due.append((due, readers, backoff))
        try:
            code = decoder.process.wait(1.0)
        except subprocess.TimeoutExpired:
            decoder.process.kill()
            code = decoder.process.wait()
        decoder.close()
        wait_s = max(0.0, due - time.monotonic())
        log.warning(
            "streamdeq serve: a decoder process ended (exit status %s); %d source(s) reopen in a "
            "new one%s",
            code,
            len(readers),
            f" in {wait_s:.1f} s" if wait_s >= 0.1 else "",
        )
        for reader in readers.values():
            reader._lost_decoder(f"its decoder process ended (exit status {code}); restarting it")

    def _restart_if_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closing:
                return
            due = [entry for entry in self._restart_due if entry[0] <= now]
            self._restart_due = [entry for entry in self._restart_due if entry[0] > now]
        for _, readers, backoff in due:
            decoder = _Decoder(self, backoff)
            with self._lock:
                self._decoders.append(decoder)
                self.restarts += 1
                for reader in readers.values():
                    decoder.readers[reader.id] = reader
                    reader._decoder = decoder
            for reader in readers.values():
                decoder.open(reader)


class ProcessSourceReader(ReaderState):
    """A source decoded in a :class:`DecoderPool` process; the interface of
    :class:`~streamdeq.serve.sources.SourceReader` (states, counters, :meth:`take`).

    The counters and state arrive from the decoder process every 0.1 s; frames as they come.
    """

    def __init__(
        self, pool: DecoderPool, source_id: str, source: str, *, loop: bool, options: SourceOptions
    ) -> None:
        super().__init__(source, loop=loop, options=options)
        self.id = source_id
        self._pool = pool
        self._decoder: _Decoder | None = None
        self._slot: FrameSlot | None = None
        self._lock = threading.Lock()
        self._counts = (0, 0, 0)  # delivered, lost, reconnects in the current decoder process
        self._before = [0, 0, 0, 0]  # the same, and stale, from earlier processes and slots
        self._index_base = 0
        self._time_base = 0.0
        self._last_time = 0.0
        self._restart = False

    @property
    def delivered(self) -> int:
        return self._before[0] + self._counts[0]

    @property
    def lost(self) -> int:
        return self._before[1] + self._counts[1]

    @property
    def reconnects(self) -> int:
        return self._before[2] + self._counts[2]

    @property
    def stale(self) -> int:
        slot = self._slot
        return self._before[3] + (slot.stale if slot is not None else 0)

    def start(self) -> None:
        self._pool._add(self)

    def stop(self) -> None:
        self._pool._remove(self)

    def join(self, timeout: float) -> None:
        """Nothing to wait for here: the decoder process ends the read in progress."""

    def take(self) -> Arrival | None:
        """The newest frame not taken yet (None: nothing new since the last take)."""
        with self._lock:
            got = self._slot.take() if self._slot is not None else None
            if got is None:
                if self.state in FINISHED and self._slot is not None:
                    self._drop_slot_locked()  # its last frame was taken: free the memory
                return None
            restarted, self._restart = got.restarted or self._restart, False
            timestamp = self._time_base + got.timestamp
            self._last_time = timestamp
        index = self._index_base + got.index
        # the status from the decoder process comes every 0.1 s: what a frame says, at once
        self.size = got.image.shape[:2]
        self.latest_index = max(self.latest_index, index)
        if self.state == "starting":
            self.state = "live"
        return Arrival(
            frame=VideoFrame(
                index=index,
                timestamp=timestamp,
                image=got.image,
                dropped_before=got.dropped_before,
                damaged=got.damaged,
                reconnected=got.reconnected,
            ),
            index=index,
            timestamp=timestamp,
            arrived_at=got.arrived_at,
            restarted=restarted,
        )

    # ------------------------------------------------------------------ from the pool

    def _set_slot(self, slot: FrameSlot) -> None:
        with self._lock:
            self._drop_slot_locked()
            self._slot = slot

    def _drop_slot(self) -> None:
        with self._lock:
            self._drop_slot_locked()

    def _drop_slot_locked(self) -> None:
        old, self._slot = self._slot, None
        if old is not None:
            self._before[3] += old.stale
            old.close(unlink=True)

    def _set_status(self, status: tuple) -> None:
        state, error, delivered, lost, reconnects, latest_index, size = status
        self._counts = (delivered, lost, reconnects)
        if latest_index >= 0:
            self.latest_index = self._index_base + latest_index
        self.size = tuple(size) if size is not None else self.size
        self.state, self.error = state, error

    def _failed(self, message: str) -> None:
        self._drop_slot()
        self.state, self.error = "failed", message

    def _lost_decoder(self, message: str) -> None:
        """Its decoder process died: count a reconnection; indices and timestamps go on from
        where they were, and the next frame starts a new shot."""
        self._drop_slot()
        with self._lock:
            for i, count in enumerate(self._counts):
                self._before[i] += count
            self._before[2] += 1
            self._counts = (0, 0, 0)
            self._index_base = self.latest_index + 1
            self._time_base = self._last_time + 1e-3
            self._restart = True
        self.state, self.error = "reconnecting", message
