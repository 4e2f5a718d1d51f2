"""The source policy and the request checks, on their own (the API tests cover them end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamdeq.errors import SettingsError
from streamdeq.serve.errors import SourceRejectedError
from streamdeq.serve.security import (
    HostCheck,
    SourcePolicy,
    is_loopback,
    needs_token,
    presented_token,
    token_matches,
)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    (root / "cams").mkdir(parents=True)
    (root / "cams" / "front.mp4").write_bytes(b"x")
    return root


# files -----------------------------------------------------------------------------------------
def test_files_under_the_media_root_resolve_to_absolute_paths(media):
    policy = SourcePolicy(media)
    expected = str((media / "cams" / "front.mp4").resolve())
    assert policy.check("cams/front.mp4") == expected
    assert policy.check(expected) == expected
    assert policy.check("cams") == str((media / "cams").resolve())  # an image folder


def policy_check(media: Path, source: str) -> str:
    return SourcePolicy(media).check(source)


def test_a_file_that_does_not_exist_yet_passes_the_policy(media):
    # the service reports it as failed; the policy only decides where it may be
    assert policy_check(media, "cams/later.mp4").endswith("later.mp4")


@pytest.mark.parametrize(
    "source", ["../x.mp4", "cams/../../x.mp4", "cams/../front.mp4", "/etc/passwd", "/"]
)
def test_paths_leaving_the_media_root_or_using_dotdot_are_rejected(media, source):
    with pytest.raises(SourceRejectedError):
        policy_check(media, source)


def test_an_absolute_path_beside_the_root_with_a_shared_prefix_is_rejected(media):
    sibling = media.parent / (media.name + "-other")
    sibling.mkdir()
    with pytest.raises(SourceRejectedError, match="outside"):
        policy_check(media, str(sibling / "x.mp4"))


def test_symlinks_out_of_the_root_are_rejected_and_links_inside_accepted(media, tmp_path):
    (tmp_path / "secret").mkdir()
    (media / "escape").symlink_to(tmp_path / "secret")
    (media / "alias.mp4").symlink_to(media / "cams" / "front.mp4")
    with pytest.raises(SourceRejectedError, match="outside"):
        policy_check(media, "escape/x.mp4")
    assert policy_check(media, "alias.mp4") == str((media / "cams" / "front.mp4").resolve())


def test_without_a_media_root_no_file_is_accepted(media):
    with pytest.raises(SourceRejectedError, match="media-root"):
        SourcePolicy(None).check(str(media / "cams" / "front.mp4"))


@pytest.mark.parametrize("source", ["", "   ", "a\nb.mp4", "x" * 5000])
def test_empty_multiline_or_huge_sources_are_rejected(media, source):
    with pytest.raises(SourceRejectedError):
        policy_check(media, source)


def test_a_media_root_that_is_not_a_folder_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="not a folder"):
        SourcePolicy(tmp_path / "nope")


# URLs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "file:/etc/passwd",
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "concat:a.mp4|b.mp4",
        "subfile:,start,0,end,0,:/etc/passwd",
        "data:video/mp4;base64,AAAA",
        "pipe:0",
        "cache:http://cam/x",
        "gopher://cam/x",
    ],
)
def test_forbidden_and_unknown_schemes_are_rejected(media, source):
    with pytest.raises(SourceRejectedError, match="scheme"):
        policy_check(media, source)


def test_a_relative_name_with_a_colon_counts_as_a_scheme(media):
    # FFmpeg reads "name:rest" as protocol "name", so the policy must not treat it as a file
    with pytest.raises(SourceRejectedError, match="scheme 'clip'"):
        policy_check(media, "clip:1.mp4")


def test_streaming_urls_pass_unchanged_by_default():
    policy = SourcePolicy(None)
    for url in ("rtsp://user:pw@cam.local:554/live", "https://cams.example/a.m3u8"):
        assert policy.check(url) == url


def test_tcp_and_udp_need_to_be_allowed_explicitly():
    with pytest.raises(SourceRejectedError, match="tcp"):
        SourcePolicy(None).check("tcp://10.0.0.5:9000")
    assert SourcePolicy(None, allowed_schemes={"tcp"}).check("tcp://10.0.0.5:9000")


def test_forbidden_schemes_can_never_be_allowed():
    with pytest.raises(SettingsError, match="file"):
        SourcePolicy(None, allowed_schemes={"rtsp", "file"})


def test_allowed_hosts_limit_url_hosts_with_patterns():
    policy = SourcePolicy(None, allowed_hosts=["cam1.local", "*.cams.example", "10.0.0.7"])
    for url in ("rtsp://cam1.local/x", "rtsp://CAM1.local/x", "rtsp://a.cams.example/x"):
        assert policy.check(url) == url
    assert policy.check("rtsp://u:p@10.0.0.7:554/x")
    for url in ("rtsp://cam2.local/x", "rtsp://cams.example.evil.com/x", "http://127.0.0.1/"):
        with pytest.raises(SourceRejectedError, match="not in the allowed hosts"):
            policy.check(url)


def test_link_local_hosts_are_rejected_unless_listed():
    with pytest.raises(SourceRejectedError, match="link-local"):
        SourcePolicy(None).check("http://169.254.169.254/latest/meta-data")
    listed = SourcePolicy(None, allowed_hosts=["169.254.1.1"])
    assert listed.check("http://169.254.1.1/x")


def test_a_url_without_host_is_rejected():
    with pytest.raises(SourceRejectedError, match="no host"):
        SourcePolicy(None).check("rtsp:///x")


# request checks --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_the_host_check_takes_loopback_names_on_any_port_and_listed_names():
    check = HostCheck(["box.lan", "proxy.example:443"])
    assert check.allows("localhost:9000") and check.allows("[::1]:8000")
    assert check.allows("box.lan:8000") and check.allows("proxy.example:443")
    assert not check.allows("proxy.example:444")
    assert not check.allows("evil.example")
    assert not check.allows("localhost:http")
    assert not check.allows("")


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/api/streams", False),
        ("GET", "/api/streams/a/settings", False),
        ("GET", "/api/streams/a/result", True),
        ("GET", "/api/streams/a/overlay.jpg", True),
        ("GET", "/api/events", True),
        ("POST", "/api/streams", True),
        ("PATCH", "/api/streams/a/settings", True),
        ("DELETE", "/api/streams/a", True),
        ("GET", "/metrics", False),
    ],
)
def test_needs_token(method, path, needed):
    assert needs_token(method, path) is needed


def test_the_token_comes_from_the_header_before_the_query():
    scope = {"headers": [(b"authorization", b"Bearer abc")], "query_string": b"token=xyz"}
    assert presented_token(scope) == "abc"
    assert presented_token({"headers": [], "query_string": b"token=x%2By"}) == "x+y"
    assert presented_token({"headers": [], "query_string": b""}) is None
    utf8 = {"headers": [(b"authorization", "Bearer ünï".encode())], "query_string": b""}
    assert presented_token(utf8) == "ünï"


def test_token_matches_only_the_same_token():
    assert token_matches("abc", "abc")
    assert not token_matches("abd", "abc") and not token_matches(None, "abc")
    assert not token_matches("", "abc") and token_matches("ünï", "ünï")


def test_url_schemes_are_lowered_and_checked_lowered():
    policy = SourcePolicy()
    assert policy.check("RTSP://Cam.Example/Live") == "rtsp://Cam.Example/Live"
    with pytest.raises(SourceRejectedError, match="scheme 'file'"):
        policy.check("File:///etc/passwd")
