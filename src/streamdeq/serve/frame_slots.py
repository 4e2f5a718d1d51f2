"""A source's latest frame in shared memory: written by a decoder process, taken by the engine.

Why a triple buffer under a lock: the decoder must never wait for the engine and the engine must
never read a frame the decoder is overwriting. The writer fills a buffer of its own, then (under
the lock, a few integer moves) makes it the "ready" one; the engine, under the same lock, swaps
the ready buffer for the one it read last and copies it out with the lock released. So the lock
is held for microseconds whatever the frame size, and a ready frame replaced before the engine
took it is dropped and counted, as with threads. The lock is a process-shared semaphore, so the
hand-over is correct on any CPU, whatever order it makes other cores see memory writes in.

Pure numpy and the standard library: a decoder process imports this module without torch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # not a POSIX system: decoder processes are not offered there
    fcntl = None

BUFFERS = 3
# control words (int64): the writer's buffer, the ready one, the engine's, "a ready frame not
# taken yet", and how many ready frames were replaced before the engine took them
WRITE, READY, READ, FRESH, STALE = range(5)
CONTROL_WORDS = 5
# per-buffer frame fields (float64)
INDEX, TIMESTAMP, ARRIVED_AT, RESTARTED, DROPPED_BEFORE, DAMAGED, RECONNECTED = range(7)
META_FIELDS = 7
#: seconds the engine waits for a slot's lock before it treats the slot as empty: only a decoder
#: process that died inside its few-microsecond swap leaves the lock held
LOCK_WAIT_S = 0.05


class RangeLock:
    """A lock on one byte of a file shared by the processes (POSIX record lock).

    Why a file lock: it can be shared with a process started by path (no inherited
    semaphore), the kernel releases it when the process holding it dies, and taking it orders
    memory on every CPU. Locks of one process do not exclude each other's threads: each slot
    has one writer thread, and the serving process takes a slot from one thread at a time.
    """

    def __init__(self, fd: int, offset: int) -> None:
        self.fd, self.offset = fd, offset

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking and timeout < 0:
            fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, self.offset)
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self.offset)
                return True
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
            if not blocking or time.monotonic() >= deadline:
                return False
            time.sleep(0.0002)

    def release(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.offset)

    def __enter__(self) -> RangeLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class SharedMemoryFull(OSError):
    """No room in shared memory for a slot."""


def _no_room(height: int, width: int, size: int, error: OSError) -> str:
    where = "/dev/shm"
    free = ""
    if os.path.isdir(where):
        stats = os.statvfs(where)
        free = f": {where} has {stats.f_bavail * stats.f_frsize / 2**20:.0f} MB free"
    return (
        f"no room in shared memory for {height}x{width} frames ({size / 2**20:.1f} MB, "
        f"{error.strerror or error}){free}; give it more (a container's --shm-size) or "
        "decode on threads (--decoders 0)"
    )


@dataclass(frozen=True)
class SlotFrame:
    """A frame taken from a slot: the pixels (a copy the caller owns) and what came with them."""

    image: np.ndarray
    index: int
    timestamp: float
    arrived_at: float
    restarted: bool
    dropped_before: int
    damaged: bool
    reconnected: bool


def slot_bytes(height: int, width: int) -> int:
    """Size of the shared memory block of a slot for frames of ``height`` x ``width``."""
    return 8 * (CONTROL_WORDS + BUFFERS * META_FIELDS) + BUFFERS * height * width * 3


class FrameSlot:
    """Views of one slot's shared memory; the writer and the taker each open their own."""

    def __init__(self, memory: SharedMemory, height: int, width: int, lock: Any) -> None:
        if memory.size < slot_bytes(height, width):
            raise ValueError(f"shared memory {memory.name} is too small for {height}x{width}")
        self.memory = memory
        self.height, self.width = height, width
        self.lock = lock
        buffer = memory.buf
        meta_at = 8 * CONTROL_WORDS
        pixels_at = meta_at + 8 * BUFFERS * META_FIELDS
        self._control = np.ndarray((CONTROL_WORDS,), np.int64, buffer, 0)
        self._meta = np.ndarray((BUFFERS, META_FIELDS), np.float64, buffer, meta_at)
        self._pixels = np.ndarray((BUFFERS, height, width, 3), np.uint8, buffer, pixels_at)

    @classmethod
    def create(cls, height: int, width: int, lock: Any) -> FrameSlot:
        """A new block (the engine's process creates it: it owns the block's lifetime).

        Raises:
            SharedMemoryFull: no room for it (a container's /dev/shm is 64 MB by default: a
                handful of 1080p cameras).
        """
        size = slot_bytes(height, width)
        memory = SharedMemory(create=True, size=size)
        try:  # take the pages now: a full /dev/shm would otherwise kill the writer (SIGBUS)
            fd = getattr(memory, "_fd", -1)
            if fd >= 0 and hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)
        except OSError as error:
            memory.close()
            memory.unlink()
            raise SharedMemoryFull(_no_room(height, width, size, error)) from None
        slot = cls(memory, height, width, lock)
        slot._control[:] = (0, 1, 2, 0, 0)
        return slot

    @classmethod
    def attach(cls, name: str, height: int, width: int, lock: Any) -> FrameSlot:
        """The writer's views of a block the engine's process created (and will remove)."""
        return cls(_attach_untracked(name), height, width, lock)

    @property
    def name(self) -> str:
        return self.memory.name

    @property
    def stale(self) -> int:
        return int(self._control[STALE])

    def publish(self, image: np.ndarray, fields: tuple[float, ...]) -> None:
        """Writer side: copy a frame in and make it the ready one (``fields`` in META order)."""
        write = int(self._control[WRITE])
        self._pixels[write] = image
        self._meta[write] = fields
        with self.lock:
            ready = int(self._control[READY])
            if self._control[FRESH]:
                self._control[STALE] += 1
                if self._meta[ready, RESTARTED]:  # the restart must not be lost with the frame
                    self._meta[write, RESTARTED] = 1.0
            self._control[WRITE], self._control[READY] = ready, write
            self._control[FRESH] = 1

    def take(self) -> SlotFrame | None:
        """Engine side: the ready frame, copied out (None: nothing new since the last take)."""
        if not self.lock.acquire(True, LOCK_WAIT_S):
            return None
        try:
            if not self._control[FRESH]:
                return None
            read = int(self._control[READY])
            self._control[READY], self._control[READ] = self._control[READ], read
            self._control[FRESH] = 0
        finally:
            self.lock.release()
        meta = self._meta[read].tolist()
        return SlotFrame(
            image=self._pixels[read].copy(),
            index=int(meta[INDEX]),
            timestamp=meta[TIMESTAMP],
            arrived_at=meta[ARRIVED_AT],
            restarted=bool(meta[RESTARTED]),
            dropped_before=int(meta[DROPPED_BEFORE]),
            damaged=bool(meta[DAMAGED]),
            reconnected=bool(meta[RECONNECTED]),
        )

    def close(self, unlink: bool = False) -> None:
        """Drop the views and unmap the block; ``unlink``: also remove its name (the owner)."""
        del self._control, self._meta, self._pixels
        self.memory.close()
        if unlink:
            with contextlib.suppress(FileNotFoundError):  # removed already
                self.memory.unlink()


_ATTACH_LOCK = threading.Lock()


def _attach_untracked(name: str) -> SharedMemory:
    """Open an existing block without handing it to this process's resource tracker.

    Python before 3.13 registers a block with the tracker even when only attaching to it, and
    the tracker of a decoder process would remove the block when that process ends, while the
    engine's process (its owner) still uses it.
    """
    if sys.version_info >= (3, 13):
        return SharedMemory(name=name, track=False)
    from multiprocessing import resource_tracker

    with _ATTACH_LOCK:
        register = resource_tracker.register
        resource_tracker.register = lambda *args: None
        try:
            return SharedMemory(name=name)
        finally:
            resource_tracker.register = register
