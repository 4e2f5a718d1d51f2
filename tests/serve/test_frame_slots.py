"""The shared-memory slot a decoder process hands frames over in: latest only, whole frames
across processes, a lock that dies with its holder, and a clear error when memory is short."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from streamdeq.serve import frame_slots
from streamdeq.serve.frame_slots import FrameSlot, RangeLock, SharedMemoryFull

H, W = 24, 32


def fields(index: int, restarted: bool = False) -> tuple[float, ...]:
    return (index, index / 25, 1000.0 + index, float(restarted), 0, 0.0, 0.0)


def image(value: int, height: int = H, width: int = W) -> np.ndarray:
    return np.full((height, width, 3), value % 256, np.uint8)


@pytest.fixture
def slot():
    slot = FrameSlot.create(H, W, threading.Lock())
    yield slot
    slot.close(unlink=True)


def test_take_gives_the_newest_frame_once_and_counts_the_replaced_ones(slot):
    assert slot.take() is None
    for index in range(3):
        slot.publish(image(index), fields(index))
    taken = slot.take()
    assert taken.index == 2 and taken.timestamp == pytest.approx(0.08)
    assert taken.arrived_at == 1002.0 and (taken.image == 2).all()
    assert slot.take() is None
    assert slot.stale == 2
    slot.publish(image(3), fields(3))
    assert slot.take().index == 3 and slot.stale == 2


def test_a_restart_is_not_lost_with_the_frame_that_carried_it(slot):
    slot.publish(image(0), fields(0, restarted=True))
    slot.publish(image(1), fields(1))
    taken = slot.take()
    assert taken.index == 1 and taken.restarted


def test_a_taken_frame_is_the_takers_own(slot):
    slot.publish(image(1), fields(1))
    taken = slot.take()
    for index in range(2, 8):  # every buffer written over
        slot.publish(image(index), fields(index))
    assert (taken.image == 1).all()


WRITER = textwrap.dedent(
    """
    import os, sys, numpy as np
    from streamdeq.serve.frame_slots import FrameSlot, RangeLock
    name, lock_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lock = RangeLock(os.open(lock_path, os.O_RDWR), 0)
    slot = FrameSlot.attach(name, 240, 320, lock)
    for i in range(count):
        slot.publish(np.full((240, 320, 3), i % 256, np.uint8), (i, 0, 0, 0, 0, 0, 0))
    print("done", flush=True)
    slot.close()
    """
)


def test_frames_cross_processes_whole_while_both_sides_run_flat_out(tmp_path):
    """Why: the writer never waits for the engine; if the hand-over let it write into the
    buffer being copied out, the engine would get frames mixing two source frames."""
    lock_path = tmp_path / "locks"
    lock_path.touch()
    fd = os.open(lock_path, os.O_RDWR)
    slot = FrameSlot.create(240, 320, RangeLock(fd, 0))
    try:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, slot.name, str(lock_path), "3000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        taken = []

        def take() -> None:
            if (frame := slot.take()) is not None:  # a whole frame is one value throughout
                taken.append((frame.index, [int(frame.image.min()), int(frame.image.max())]))

        while writer.poll() is None:
            take()
        assert writer.stdout.read().strip() == "done" and writer.returncode == 0
        take()
        stale = slot.stale
    finally:
        slot.close(unlink=True)
        os.close(fd)
    assert len(taken) >= 10, "the reader got frames while the writer ran"
    assert all(values == [index % 256] * 2 for index, values in taken), "a torn frame"
    indices = [index for index, _ in taken]
    assert indices == sorted(set(indices)) and indices[-1] == 2999
    assert stale == 3000 - len(taken)


HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from streamdeq.serve.frame_slots import RangeLock
    lock = RangeLock(os.open(sys.argv[1], os.O_RDWR), 7)
    lock.acquire()
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_a_lock_held_by_a_process_that_died_is_free_again(tmp_path):
    """Why: a decoder process killed inside its swap must not freeze the engine's takes."""
    lock_path = tmp_path / "locks"
    lock_path.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)], stdout=subprocess.PIPE, text=True
    )
    fd = os.open(lock_path, os.O_RDWR)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = RangeLock(fd, 7)
        start = time.monotonic()
        assert not lock.acquire(True, 0.05)
        assert time.monotonic() - start >= 0.05
        assert RangeLock(fd, 8).acquire(False), "other bytes are other locks"
        holder.kill()
        holder.wait()
        assert lock.acquire(True, 5.0)
        lock.release()
    finally:
        holder.kill()
        os.close(fd)


def test_no_room_in_shared_memory_is_a_clear_error_and_leaves_nothing(monkeypatch):
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    before = set(os.listdir("/dev/shm")) if Path("/dev/shm").is_dir() else set()
    monkeypatch.setattr(frame_slots.os, "posix_fallocate", full, raising=False)
    with pytest.raises(SharedMemoryFull) as raised:
        FrameSlot.create(1080, 1920, threading.Lock())
    message = str(raised.value)
    assert "1080x1920" in message and "--shm-size" in message and "--decoders 0" in message
    assert "\n" not in message
    if Path("/dev/shm").is_dir():
        assert set(os.listdir("/dev/shm")) <= before, "the block was removed"
