"""``streamdeq serve`` on the command line: its help, the refusal of a public bind without a
token, and a real server process stopped by SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from streamdeq.app.cli import app, main

from .service_helpers import PATIENCE_S, clip_file

OPTIONS = ("--config", "--host", "--port", "--max-streams", "--token", "--media-root")
OPTIONS += ("--allow-scheme", "--allow-hosts", "--state-file", "--loop", "--iters", "--device")


def test_help_documents_the_options():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in OPTIONS:
        assert option in result.output


def test_a_public_host_without_a_token_is_refused_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["streamdeq", "serve", "--host", "0.0.0.0"])
    monkeypatch.delenv("STREAMDEQ_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--host 0.0.0.0" in lines[0] and "token" in lines[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
def test_sigterm_drains_and_ends_by_the_signal(tmp_path):
    port = _free_port()
    clip = clip_file(tmp_path)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "streamdeq", "serve", str(clip), "--port", str(port)),
            *("--state-file", str(tmp_path / "state.json"), "--threads", "1", "--iters", "2"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            streams = _get_json(f"{base}/api/streams")
            if streams and streams[0]["frames"] > 0:
                break
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        else:
            pytest.fail("the server never processed a frame")
        assert _get_json(f"{base}/healthz")["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=PATIENCE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGTERM, stderr  # a shell shows 143
    assert "Traceback" not in stderr
    assert (
        not (tmp_path / "state.json").exists()
        or "clip" not in (tmp_path / "state.json").read_text()
    )  # command-line streams are not persisted
