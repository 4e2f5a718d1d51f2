"""Source readers: what FFmpeg may open for each scheme, credentials kept out of sight, looping
files that count on, and the latest-only slot."""

from __future__ import annotations

import pytest

from streamdeq.data.errors import HardwareDecodingError, VideoError
from streamdeq.errors import SettingsError
from streamdeq.serve import SourceOptions, SourceRejectedError, sources
from streamdeq.serve.sources import (
    SourceReader,
    display_source,
    ffmpeg_options,
    source_kind,
)

from ..data.test_hardware import needs_no_cuda
from .service_helpers import clip_file, wait_for


@pytest.mark.parametrize(
    ("url", "protocols"),
    [
        ("tcp://127.0.0.1:5000", "tcp"),
        ("rtsp://cam/live", "rtsp,rtp,udp,tcp"),
        ("http://cam/playlist.m3u8", "http,tcp"),
        ("https://cam/playlist.m3u8", "https,tls,tcp,http"),
        ("udp://239.0.0.1:1234", "udp"),
    ],
)
def test_network_sources_may_use_only_their_schemes_protocols(url, protocols):
    whitelist = ffmpeg_options(url)["protocol_whitelist"]
    assert whitelist == protocols and "file" not in whitelist.split(",")


def test_files_are_opened_with_the_file_protocol_only(tmp_path):
    assert ffmpeg_options(str(tmp_path / "a.mp4")) == {"protocol_whitelist": "file"}


def test_a_probesize_reaches_ffmpeg_for_stream_urls_only(tmp_path, monkeypatch):
    """Why: FFmpeg's MPEG-TS demuxer fills a probesize-sized buffer per live camera (5 MB by
    default); an operator with many cameras bounds that memory with a smaller one."""
    assert ffmpeg_options("tcp://127.0.0.1:5000", 1_000_000) == {
        "protocol_whitelist": "tcp",
        "probesize": "1000000",
    }
    assert "probesize" not in ffmpeg_options("tcp://127.0.0.1:5000")
    assert ffmpeg_options(str(tmp_path / "a.mp4"), 1_000_000) == {"protocol_whitelist": "file"}
    opened = []

    def fake_open(source, **kwargs):
        opened.append(kwargs["options"])
        raise VideoError("no camera here")

    monkeypatch.setattr(sources, "open_video", fake_open)
    options = SourceOptions(probesize=1_000_000, reconnect=False)
    reader = SourceReader("tcp://127.0.0.1:9", loop=False, options=options)
    reader.start()
    reader.join(5.0)
    assert opened == [{"protocol_whitelist": "tcp", "probesize": "1000000"}]
    assert reader.state == "failed" and reader.error == "no camera here"
    with pytest.raises(SettingsError, match="probesize"):
        SourceOptions(probesize=sources.PROBESIZE_MIN - 1)


def test_the_command_line_refuses_a_probesize_below_the_same_minimum():
    from typer.testing import CliRunner

    from streamdeq.app.cli import app

    refused = CliRunner().invoke(app, ["serve", "--probesize", str(sources.PROBESIZE_MIN - 1)])
    assert refused.exit_code == 2 and str(sources.PROBESIZE_MIN) in refused.output


def test_unknown_schemes_are_rejected_and_kinds_told_apart(tmp_path):
    with pytest.raises(SourceRejectedError, match="gopher"):
        source_kind("gopher://host/x")
    assert source_kind("rtsp://cam/live") == "url"
    assert source_kind(str(tmp_path)) == "folder"
    assert source_kind(str(tmp_path / "a.mp4")) == "file"


def test_credentials_are_stripped_for_display():
    assert display_source("rtsp://admin:pw@10.0.0.5:554/s") == "rtsp://10.0.0.5:554/s"
    assert display_source("rtsp://10.0.0.5/s") == "rtsp://10.0.0.5/s"
    assert display_source("/data/a.mp4") == "/data/a.mp4"


def test_a_looping_file_counts_on_and_marks_each_restart(tmp_path):
    arrivals = []
    reader = SourceReader(
        str(clip_file(tmp_path, frames=4)),
        loop=True,
        options=SourceOptions(realtime=False),
        on_frame=lambda: arrivals.append(reader.take()),
    )
    reader.start()
    wait_for(lambda: len(arrivals) >= 10, "two and a half passes")
    reader.stop()
    reader.join(5)
    indices = [a.index for a in arrivals[:10]]
    assert indices == list(range(10))
    assert [a.restarted for a in arrivals[:10]] == [i in (4, 8) for i in range(10)]
    timestamps = [a.timestamp for a in arrivals[:10]]
    assert timestamps == sorted(timestamps)


def test_the_slot_keeps_only_the_newest_frame(tmp_path):
    reader = SourceReader(
        str(clip_file(tmp_path, frames=8)), loop=False, options=SourceOptions(realtime=False)
    )
    reader.start()
    wait_for(lambda: reader.state == "ended", "the end of the file")
    newest = reader.take()
    assert newest.index == 7 and reader.take() is None
    assert reader.stale == 7 and reader.delivered == 8


def test_display_drops_a_user_without_a_password_too():
    assert display_source("rtsp://admin@10.0.0.5/s") == "rtsp://10.0.0.5/s"
    assert display_source("clips/a.mp4") == "clips/a.mp4"


@needs_no_cuda
def test_a_source_decoded_on_a_missing_gpu_fails_with_the_reason(tmp_path):
    options = SourceOptions(hwaccel="cuda", realtime=False)
    reader = SourceReader(str(clip_file(tmp_path)), loop=True, options=options)
    reader.start()
    wait_for(lambda: reader.state == "failed", "the source to fail")
    assert reader.error.startswith("cannot use the cuda hardware decoder")


def test_an_unknown_hardware_decoder_is_refused_with_the_options():
    with pytest.raises(HardwareDecodingError, match="unknown hardware decoder"):
        SourceOptions(hwaccel="nvdec")
