"""Sources decoded in decoder processes: frames, states and counters as with threads, no torch
in the processes, a killed process replaced without losing its sources, nothing left behind."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from streamdeq.serve import decoders
from streamdeq.serve.decoders import DecoderPool
from streamdeq.serve.frame_slots import FrameSlot, SharedMemoryFull
from streamdeq.serve.sources import SourceOptions

from ..data.test_hardware import needs_no_cuda
from .service_helpers import clip_file, wait_for

FAST = SourceOptions(realtime=False, timeout=2.0)


@pytest.fixture
def pool():
    woken = []
    pool = DecoderPool(2, on_frame=lambda: woken.append(time.monotonic()))
    pool.woken = woken
    yield pool
    pool.close()


def shared_blocks() -> set[str]:
    return set(os.listdir("/dev/shm")) if Path("/dev/shm").is_dir() else set()


def takes(reader, count: int) -> list:
    """The next ``count`` frames the reader hands out (polling, as the engine's ticks do)."""
    got = []

    def more():
        if (arrival := reader.take()) is not None:
            got.append(arrival)
        return len(got) >= count

    wait_for(more, f"{count} frames")
    return got


def test_frames_states_and_counters_come_from_the_decoder_process(pool, tmp_path):
    reader = pool.reader(str(clip_file(tmp_path, frames=12)), loop=False, options=SourceOptions())
    reader.start()
    got = takes(reader, 3)
    first = got[0]
    assert first.frame.image.shape == (48, 64, 3) and first.frame.image.dtype.name == "uint8"
    assert [a.index for a in got] == sorted(a.index for a in got)
    assert first.arrived_at <= time.time() and not first.restarted
    assert reader.size == (48, 64) and reader.state == "live"
    assert pool.woken, "the engine is woken when frames come"
    wait_for(lambda: reader.state == "ended", "the end of the file")
    wait_for(lambda: reader.delivered == 12, "the counters of the whole file")
    assert reader.lost == 0 and reader.latest_index == 11
    last = reader.take()  # the file's last frame, unless a poll above took it
    assert last is None or last.index == 11
    assert reader.take() is None and reader._slot is None, "an ended source frees its memory"


def test_a_decoder_process_does_not_load_torch(pool, tmp_path):
    """Why: importing the package's torch would cost each decoder seconds and ~200 MB."""
    reader = pool.reader(str(clip_file(tmp_path)), loop=True, options=SourceOptions())
    reader.start()
    takes(reader, 1)
    (decoder,) = pool._decoders
    maps = Path(f"/proc/{decoder.process.pid}/maps").read_text()
    assert "libavcodec" in maps and "libtorch" not in maps


def test_a_looping_file_counts_on_and_keeps_each_restart(pool, tmp_path):
    """The engine may take only some of the frames: a restart must still reach it."""
    reader = pool.reader(str(clip_file(tmp_path, frames=4)), loop=True, options=FAST)
    reader.start()
    got = takes(reader, 20)
    indices = [a.index for a in got]
    assert indices == sorted(set(indices)) and indices[-1] >= 19
    restarted = [a for a in got if a.restarted]
    assert restarted, "a loop back to the start is a new shot"
    passes = {a.index // 4 for a in got}
    assert len(restarted) >= len(passes) - 2  # every pass seen is marked, bar the ends
    wait_for(lambda: reader.stale > 0, "frames replaced before they were taken")


def test_a_source_that_cannot_be_opened_reports_failed(pool, tmp_path):
    reader = pool.reader(str(tmp_path / "missing.mp4"), loop=False, options=SourceOptions())
    reader.start()
    wait_for(lambda: reader.state == "failed", "the failure")
    assert "missing.mp4" in reader.error and reader.take() is None


def test_a_killed_decoder_process_is_replaced_and_its_sources_go_on(pool, tmp_path, caplog):
    reader = pool.reader(str(clip_file(tmp_path, frames=30)), loop=True, options=SourceOptions())
    reader.start()
    before = takes(reader, 3)[-1]
    (decoder,) = pool._decoders
    os.kill(decoder.process.pid, signal.SIGKILL)
    wait_for(lambda: reader.state == "reconnecting", "the lost process shown")
    assert "decoder process ended" in reader.error and reader.reconnects == 1
    assert "a decoder process ended (exit status -9); 1 source(s) reopen" in caplog.text
    after = takes(reader, 2)
    assert after[0].restarted, "frames from the new process start a new shot"
    assert after[0].index > before.index and after[0].timestamp > before.timestamp
    assert pool.restarts == 1 and pool._decoders[0] is not decoder
    wait_for(lambda: reader.state == "live", "the source live again")


def test_a_source_that_had_ended_is_not_played_again_by_the_new_process(pool, tmp_path):
    done = pool.reader(str(clip_file(tmp_path, frames=3)), loop=False, options=FAST)
    playing = pool.reader(str(clip_file(tmp_path, name="b.mp4")), loop=True, options=FAST)
    done.start()
    playing.start()
    wait_for(lambda: done.state == "ended" and playing.state == "live", "one ended, one live")
    (decoder,) = pool._decoders
    os.kill(decoder.process.pid, signal.SIGKILL)
    wait_for(lambda: pool.restarts == 1 and playing.state == "live", "the new process")
    time.sleep(0.3)  # statuses of the decoder process come every 0.1 s
    assert done.state == "ended" and done.reconnects == 0
    assert list(pool._decoders[0].readers) == [playing.id]


def test_one_process_per_so_many_sources_up_to_the_limit(pool, tmp_path, monkeypatch):
    monkeypatch.setattr(decoders, "SOURCES_PER_PROCESS", 2)
    clip = str(clip_file(tmp_path))
    readers = [pool.reader(clip, loop=True, options=SourceOptions()) for _ in range(5)]
    for reader in readers[:2]:
        reader.start()
    assert len(pool._decoders) == 1
    for reader in readers[2:]:
        reader.start()
    assert sorted(len(d.readers) for d in pool._decoders) == [2, 3]  # at most 2 processes
    for reader in readers:
        takes(reader, 1)


def test_removing_a_source_and_closing_the_pool_leave_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the lock file is made
    before = shared_blocks()
    pool = DecoderPool(1)
    reader = pool.reader(str(clip_file(tmp_path)), loop=True, options=SourceOptions())
    other = pool.reader(str(clip_file(tmp_path, name="b.mp4")), loop=True, options=SourceOptions())
    reader.start()
    other.start()
    takes(reader, 1)
    takes(other, 1)
    assert len(shared_blocks() - before) == 2
    assert not list(tmp_path.glob("streamdeq-slots-*")), "a killed server leaves no lock file"
    reader.stop()
    assert len(shared_blocks() - before) == 1 and reader.take() is None
    (decoder,) = pool._decoders
    pool.close()
    assert decoder.process.poll() is not None, "the decoder process ended"
    assert shared_blocks() <= before


def test_a_source_that_finds_no_shared_memory_fails_alone(pool, tmp_path, monkeypatch):
    create = FrameSlot.create

    def short_of_memory(height, width, lock):
        if height == 48:
            raise SharedMemoryFull("no room in shared memory for 64x48 frames")
        return create(height, width, lock)

    monkeypatch.setattr(FrameSlot, "create", staticmethod(short_of_memory))
    small = pool.reader(str(clip_file(tmp_path)), loop=True, options=SourceOptions())
    big = pool.reader(str(decoders_clip(tmp_path)), loop=True, options=SourceOptions())
    small.start()
    big.start()
    wait_for(lambda: small.state == "failed", "the failure")
    assert "no room in shared memory" in small.error
    takes(big, 2)
    time.sleep(0.3)  # statuses of the decoder process come every 0.1 s
    assert small.state == "failed"


def decoders_clip(folder: Path) -> Path:
    from ..data.clips import write_clip

    return write_clip(folder / "big.mp4", frames=12, width=96, height=64)


@needs_no_cuda
def test_the_hardware_decoder_setting_reaches_the_decoder_process(pool, tmp_path):
    """The options travel to the process as they are: there, the missing GPU decoder fails
    the source with the same line as on a thread."""
    options = SourceOptions(hwaccel="cuda", realtime=False)
    reader = pool.reader(str(clip_file(tmp_path)), loop=True, options=options)
    reader.start()
    wait_for(lambda: reader.state == "failed", "the source to fail")
    assert reader.error.startswith("cannot use the cuda hardware decoder")
