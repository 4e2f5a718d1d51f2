"""``streamdeq serve`` on the command line: its help, mistakes refused in one line (before the
model loads where they can be), and a real server process that says where it listens and is
stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import inspect
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from streamdeq.app import run_options
from streamdeq.app.cli import app, main, serve_command
from streamdeq.data.video import DEFAULT_FOLDER_FPS
from streamdeq.serve.sources import SourceOptions

from ..data.test_hardware import needs_no_cuda
from .service_helpers import PATIENCE_S, clip_file, wait_for

OPTIONS = ("--config", "--host", "--port", "--max-streams", "--token", "--media-root")
OPTIONS += ("--allow-scheme", "--allow-hosts", "--state-file", "--loop", "--iters", "--device")
OPTIONS += ("--decoders", "--hwaccel")


def test_help_documents_the_options():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in OPTIONS:
        assert option in result.output
    assert "else in the working folder" in " ".join(result.output.split())


def test_image_folders_default_to_the_frame_rate_of_run():
    assert inspect.signature(serve_command).parameters["folder_fps"].default == DEFAULT_FOLDER_FPS
    assert SourceOptions().folder_fps == DEFAULT_FOLDER_FPS


def serve_error(monkeypatch, capsys, *args: str) -> str:
    """The one line ``streamdeq serve ARGS`` ends with (exit 2), the model never loaded."""

    def no_model(*_, **__):
        raise AssertionError("the model was loaded before the mistake was found")

    monkeypatch.setattr("streamdeq.app.serving.resolve_model", no_model)
    monkeypatch.setattr(sys, "argv", ["streamdeq", "serve", *args])
    monkeypatch.delenv("STREAMDEQ_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main()
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("streamdeq: error: "), lines
    return lines[0]


def test_a_port_in_use_is_one_line_before_the_model_loads(monkeypatch, capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        line = serve_error(monkeypatch, capsys, "--port", str(port))
    assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line


@needs_no_cuda
def test_hwaccel_without_the_gpu_decoder_is_one_line_before_the_model_loads(monkeypatch, capsys):
    line = serve_error(monkeypatch, capsys, "--hwaccel", "cuda", "--device", "cpu", "--port", "0")
    assert "cannot use the cuda hardware decoder" in line


def test_an_unknown_hwaccel_is_one_line(monkeypatch, capsys):
    line = serve_error(monkeypatch, capsys, "--hwaccel", "nvdec", "--port", "0")
    assert "unknown hardware decoder 'nvdec'" in line


def test_hwaccel_reaches_the_sources_on_the_models_gpu(monkeypatch):
    from streamdeq.app import serving

    monkeypatch.setattr(serving, "resolve_device", lambda device: torch.device(device))
    monkeypatch.setattr(run_options, "resolve_device", lambda device: torch.device(device))
    options = serving.ServeOptions(model="mdeq-seg-tiny-synthetic", hwaccel="cuda", device="cpu")
    service = serving.build_service(options, serving.ServeConfig())
    assert service.source_options.hwaccel == "cuda"
    on_gpu_1 = replace(options, device="cuda:1").hardware_decoding()
    assert str(on_gpu_1) == "cuda:1"


def test_a_host_that_does_not_resolve_is_one_line(monkeypatch, capsys):
    def unknown(*_, **__):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    line = serve_error(monkeypatch, capsys, "--host", "cams.invalid", "--token", "t", "--port", "0")
    assert "cannot listen on cams.invalid:0" in line and "does not resolve" in line


def test_conflicting_iteration_flags_are_named_as_flags(monkeypatch, capsys):
    line = serve_error(monkeypatch, capsys, "--iters", "2", "--tol", "0.01")
    assert "--iters and --tol conflict: give one of --iters, --tol or --budget-ms" in line


def test_too_many_sources_for_max_streams_says_to_raise_it(monkeypatch, capsys, tmp_path):
    sources = [str(tmp_path / f"{name}.mp4") for name in "abc"]
    line = serve_error(monkeypatch, capsys, *sources, "--max-streams", "2")
    assert "raise --max-streams" in line and "remove" not in line


def test_a_bad_setting_in_the_config_names_the_file_and_the_stream(monkeypatch, capsys, tmp_path):
    config = tmp_path / "streams.yaml"
    config.write_text("streams:\n  - {source: a.mp4, id: gate, settings: {mode: fast}}\n")
    line = serve_error(monkeypatch, capsys, "--config", str(config))
    assert f"--config {config}: stream 1 (gate): mode" in line


def test_a_public_host_without_a_token_is_refused_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["streamdeq", "serve", "--host", "0.0.0.0"])
    monkeypatch.delenv("STREAMDEQ_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--host 0.0.0.0" in lines[0] and "token" in lines[0]


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _stderr_lines(process: subprocess.Popen) -> queue.Queue:
    """The process's stderr lines as they come (None at its end), read on a thread so that a
    test can wait for one with a timeout."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: queue.Queue, pattern: str, seen: list[str]) -> re.Match:
    while True:
        line = lines.get(timeout=PATIENCE_S)
        if line is None:
            pytest.fail(f"the process ended without printing {pattern!r}: {''.join(seen)}")
        seen.append(line)
        if match := re.search(pattern, line):
            return match


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
def test_it_says_where_it_listens_and_sigterm_drains_and_ends_by_the_signal(tmp_path):
    clip = clip_file(tmp_path)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "streamdeq", "serve", str(clip), "--port", "0"),
            *("--state-file", str(tmp_path / "state.json"), "--threads", "1", "--iters", "2"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        lines = _stderr_lines(process)
        started = _next_line(
            lines,
            r"^streamdeq serve: (http://127\.0\.0\.1:(\d+)/) \(1 stream, model .+ on cpu\)",
            seen,
        )
        base, port = started.group(1).rstrip("/"), int(started.group(2))
        assert port != 0 and "Ctrl-C or SIGTERM stops" in seen[-1]
        wait_for(
            lambda: (streams := _get_json(f"{base}/api/streams")) and streams[0]["frames"] > 0,
            "the server to process a frame",
        )
        assert _get_json(f"{base}/healthz")["status"] == "ok"
        decoders = _decoder_processes(process.pid)
        assert len(decoders) == 1 or not Path("/proc").is_dir(), "its source's decoder process"
        process.send_signal(signal.SIGTERM)
        _next_line(lines, r"^streamdeq serve: stopped \(SIGTERM\)", seen)
        process.wait(timeout=PATIENCE_S)
        assert not [pid for pid in decoders if Path(f"/proc/{pid}").exists()], "none outlives it"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = "".join(seen)
    assert process.returncode == -signal.SIGTERM, stderr  # a shell shows 143
    assert "Traceback" not in stderr
    assert (
        not (tmp_path / "state.json").exists()
        or "clip" not in (tmp_path / "state.json").read_text()
    )  # command-line streams are not persisted


def _decoder_processes(pid: int) -> list[int]:
    """The decoder processes among the children of process ``pid`` (Linux's /proc)."""
    found = []
    if not Path("/proc").is_dir():
        return found
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"streamdeq-decoder" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def test_only_the_settings_flags_given_override_the_configs_defaults(monkeypatch, tmp_path):
    from streamdeq.app.serving import ServeConfig, _startup_defaults

    captured = {}
    monkeypatch.setattr(
        "streamdeq.app.serving.serve", lambda options, _: captured.update(o=options)
    )
    monkeypatch.setattr(sys, "argv", ["streamdeq", "serve", "--shot-policy", "reset"])
    main()
    options = captured["o"]
    assert options.settings == {"shot_policy": "reset"}  # no --mode: the config's stands
    defaults = _startup_defaults(options, ServeConfig(defaults={"mode": "keyframe"}), 24)
    assert defaults["mode"] == "keyframe" and defaults["shot_policy"] == "reset"


def test_decoders_reach_the_service_and_zero_means_threads(monkeypatch):
    from streamdeq.app.serving import ServeConfig, ServeOptions, build_service
    from streamdeq.serve.decoders import auto_processes

    monkeypatch.setattr(sys, "argv", ["streamdeq", "serve", "--decoders", "-1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    model = "mdeq-seg-tiny-synthetic"
    threads = build_service(ServeOptions(model=model, decoders=0), ServeConfig())
    assert threads.decoder_processes == 0 and threads._decoders is None
    three = build_service(ServeOptions(model=model, decoders=3), ServeConfig())
    assert three.decoder_processes == 3 and three._decoders.processes == 3
    auto = build_service(ServeOptions(model=model), ServeConfig())
    assert auto.decoder_processes == auto_processes() >= 1


def test_the_server_hands_free_heap_pages_back_while_it_serves(monkeypatch, tmp_path):
    """Hours of cameras: the memory releaser runs for as long as the server does."""
    from streamdeq.app import serving

    events = []

    class Releaser:
        def start(self):
            events.append("releaser started")
            return True

        def stop(self):
            events.append("releaser stopped")

    class Server:
        def run(self, sockets):
            events.append("serving")

    monkeypatch.setattr(serving, "MemoryReleaser", Releaser)
    monkeypatch.setattr(serving, "_make_server", lambda config, stopper: Server())
    options = serving.ServeOptions(port=0, device="cpu", state_file=tmp_path / "state.json")
    serving.serve(options, end_by_signal=lambda signum: None)
    assert events == ["releaser started", "serving", "releaser stopped"]


def test_the_start_line_names_this_machine_when_bound_to_every_interface():
    """0.0.0.0 is no address a browser on another machine can open."""
    from streamdeq.app.serving import listening_url

    with socket.create_server(("0.0.0.0", 0)) as everywhere:
        port = everywhere.getsockname()[1]
        assert (
            listening_url(everywhere) == f"http://{socket.gethostname()}:{port}/ (all interfaces)"
        )
    with socket.create_server(("127.0.0.1", 0)) as loopback:
        assert listening_url(loopback) == f"http://127.0.0.1:{loopback.getsockname()[1]}/"
