"""``streamdeq serve``: the model, the service, the HTTP app and uvicorn, started and stopped in
the right order.

Order of work: options are checked first (a public bind without a token is refused before
anything loads), then the config file, then the listening socket is bound (a taken port or a
host that does not resolve fails in one line before the model loads, and ``--port 0`` has its
real port to print), then the model; the service starts, the command line's and the config's
streams are added (not persisted), the state file's streams come back, one line on stderr says
where the page is, and uvicorn serves on the socket. A stop signal (SIGTERM, Ctrl-C, SIGHUP)
drains: uvicorn stops accepting, the service finishes its ticks, closes its sources and its
event streams, and the process ends by the signal (exit 143 for SIGTERM), as ``streamdeq run``
does.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..cpu_allocator import MemoryReleaser
from ..data.hardware import HardwareDecoding
from ..data.video import DEFAULT_FOLDER_FPS
from ..errors import SettingsError, StreamDEQError
from ..models.resolve import resolve_model
from ..serve.config import ServeConfig, default_state_file, load_config
from ..serve.service import Service
from ..serve.settings import DEFAULT_SETTINGS, ITERATION_KEYS, max_iters_for, merge_settings
from ..serve.sources import SourceOptions
from ..stream import StreamSettings
from .run_options import hardware_decoding, resolve_device
from .runner import STOP_SIGNALS


@dataclass(frozen=True)
class ServeOptions:
    """What ``streamdeq serve`` was asked to do (the flags, checked when built)."""

    sources: tuple[str, ...] = ()
    config: Path | None = None
    model: str | None = None
    checkpoint: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    max_streams: int = 16
    token: str | None = None
    media_root: Path | None = None
    allow_schemes: tuple[str, ...] | None = None
    allow_hosts: tuple[str, ...] | None = None
    hostnames: tuple[str, ...] = ()
    state_file: Path | None = None
    loop: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    folder_fps: float = DEFAULT_FOLDER_FPS
    timeout: float = 10.0
    probesize: int | None = None
    jpeg_quality: int = 80
    threads: int | None = None
    decoders: int | None = None
    hwaccel: str | None = None
    stop_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise SettingsError(
                f"--host {self.host} is reachable from other machines: set a token (--token or "
                "STREAMDEQ_TOKEN) or bind to 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"--port must be 0..65535, got {self.port}")
        check_flag_settings(self.settings)
        if self.stop_timeout <= 0:
            raise SettingsError(f"--stop-timeout must be > 0, got {self.stop_timeout}")
        resolve_device(self.device)
        self.hardware_decoding()

    def hardware_decoding(self) -> HardwareDecoding | None:
        """The sources' hardware decoder, a plain "cuda" on the model's GPU."""
        return hardware_decoding(self.hwaccel, self.device)


#: The flag of each stream setting, for messages about the command line.
SETTING_FLAGS = {
    "mode": "--mode",
    "iters": "--iters",
    "tol": "--tol",
    "budget_ms": "--budget-ms",
    "shot_policy": "--shot-policy",
}


def check_flag_settings(settings: dict[str, Any], max_iters: int | None = None) -> dict[str, Any]:
    """The flags' stream settings, checked; a mistake is said in flags (``--iters``), not in
    the API's field names."""
    given = [SETTING_FLAGS[name] for name in ITERATION_KEYS if settings.get(name) is not None]
    if len(given) > 1:
        raise SettingsError(
            f"{' and '.join(given)} conflict: give one of --iters, --tol or --budget-ms",
            field="iters",
        )
    try:
        return merge_settings(DEFAULT_SETTINGS, settings, max_iters=max_iters)
    except SettingsError as error:
        raise SettingsError(_in_flags(error), field=error.field) from None


def _in_flags(error: SettingsError) -> str:
    message = str(error).replace(" or None", "")  # no flag takes None
    flag = SETTING_FLAGS.get(error.field or "")
    if flag is None:
        return message
    return re.sub(rf"\b(?<!-){re.escape(error.field or '')}\b", flag, message, count=1)


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only the loopback interface (the security layer's test)."""
    from ..serve.security import is_loopback as loopback

    return loopback(host)


def check_stream_count(options: ServeOptions, config: ServeConfig) -> None:
    """The command line's and the config's streams fit in --max-streams (checked before the
    model loads, and said in the command line's words)."""
    count = len(options.sources) + len(config.streams)
    if count > options.max_streams:
        given = "SOURCE arguments and --config streams" if config.streams else "SOURCE arguments"
        raise SettingsError(
            f"{count} {given} but --max-streams {options.max_streams}: raise --max-streams "
            f"to at least {count}",
            field="max_streams",
        )


def bind_listener(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound now: a port in use or a host that does not resolve
    is one line naming host:port, and with ``port`` 0 the chosen port is known before the
    server starts."""
    where = f"{host}:{port}"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (OSError, UnicodeError) as error:
        raise SettingsError(
            f"cannot listen on {where}: host {host!r} does not resolve ({_reason(error)})",
            field="host",
        ) from None
    try:
        listener = socket.create_server((host, port), family=family)
    except OSError as error:
        raise SettingsError(f"cannot listen on {where}: {_reason(error)}", field="port") from None
    listener.set_inheritable(True)
    return listener


def _reason(error: BaseException) -> str:
    number = getattr(error, "errno", None)
    if isinstance(error, OSError) and not isinstance(error, socket.gaierror) and number:
        reason = os.strerror(number)  # not create_server's "(while attempting to bind ...)"
    else:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return reason[0].lower() + reason[1:] if reason else reason


def listening_url(listener: socket.socket) -> str:
    """The address the page is at, with the port actually bound. Bound to every interface
    (0.0.0.0, ::), which is no address a browser can open, it names this machine instead."""
    host, port = listener.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        return f"http://{socket.gethostname()}:{port}/ (all interfaces)"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def build_service(options: ServeOptions, config: ServeConfig) -> Service:
    """The model and the service (not started)."""
    device = resolve_device(options.device)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    loaded = resolve_model(
        options.model, options.checkpoint, weights="random-if-missing", device=device
    )
    if loaded.warning:
        print(f"streamdeq: warning: {loaded.warning}", file=sys.stderr)
    defaults = _startup_defaults(options, config, max_iters_for(loaded.model, StreamSettings()))
    hardware = options.hardware_decoding()
    state_file = options.state_file or default_state_file(options.config)
    return Service(
        loaded.model,
        device=device,
        max_streams=options.max_streams,
        state_file=state_file,
        defaults=defaults,
        jpeg_quality=options.jpeg_quality,
        source_options=SourceOptions(
            folder_fps=options.folder_fps,
            timeout=options.timeout,
            probesize=options.probesize,
            hwaccel=None if hardware is None else str(hardware),
        ),
        model_name=loaded.description,
        decoder_processes=options.decoders,
    )


def _startup_defaults(options: ServeOptions, config: ServeConfig, max_iters: int) -> dict[str, Any]:
    """The config's defaults under the flags, checked against the model's N (each mistake
    said where it was made)."""
    try:
        from_config = merge_settings(DEFAULT_SETTINGS, config.defaults, max_iters=max_iters)
    except SettingsError as error:
        raise SettingsError(f"--config {config.path}: defaults: {error}") from None
    check_flag_settings(options.settings, max_iters)
    return merge_settings(from_config, options.settings, max_iters=max_iters)


def add_startup_streams(service: Service, options: ServeOptions, config: ServeConfig) -> None:
    """The config's and the command line's streams: the operator's own, never persisted. A
    stream refused (a setting over the model's cap, a taken id) is named with where it came
    from."""
    for index, spec in enumerate(config.streams):
        try:
            service.add_spec(spec, persist=False)
        except StreamDEQError as error:
            raise SettingsError(f"{config.where(index)}: {error}") from None
    for source in options.sources:
        try:
            service.add_stream(source, loop=options.loop, persist=False)
        except StreamDEQError as error:
            raise SettingsError(f"SOURCE {source}: {error}") from None


def serve(options: ServeOptions, end_by_signal: Callable[[int], Any]) -> None:
    """Run the service behind uvicorn until a stop signal; then drain and end by it."""
    from ..serve.security import DEFAULT_SCHEMES, SourcePolicy

    config = load_config(options.config) if options.config is not None else ServeConfig()
    check_stream_count(options, config)
    hardware = options.hardware_decoding()
    if hardware is not None:
        hardware.check()  # no GPU decoder: one line now, not a failure per camera later
    policy = SourcePolicy(
        media_root=options.media_root,
        allowed_schemes=options.allow_schemes or DEFAULT_SCHEMES,
        allowed_hosts=options.allow_hosts,
    )
    listener = bind_listener(options.host, options.port)
    try:
        _serve_on(listener, options, config, policy, end_by_signal)
    finally:
        listener.close()


def _serve_on(
    listener: socket.socket,
    options: ServeOptions,
    config: ServeConfig,
    policy: Any,
    end_by_signal: Callable[[int], Any],
) -> None:
    import uvicorn

    from ..serve.http import create_app

    service = build_service(options, config)
    try:
        add_startup_streams(service, options, config)
        service.start(check_source=policy.check)  # the state file's streams came from the API
    except BaseException:
        service.stop(options.stop_timeout)
        raise
    for notice in service.notices:
        print(f"streamdeq: note: {notice}", file=sys.stderr)
    app = create_app(
        service,
        token=options.token or None,
        allowed_hosts=list(options.hostnames) or None,
        policy=policy,
        loopback=is_loopback(options.host),
    )
    stopper = _Stopper(service, options.stop_timeout)
    server = _make_server(
        uvicorn.Config(
            app,
            log_level="warning",
            timeout_graceful_shutdown=int(options.stop_timeout) + 1,
        ),
        stopper,
    )
    streams = len(service.streams())
    print(
        f"streamdeq serve: {listening_url(listener)} ({streams} stream{'s' * (streams != 1)}, "
        f"model {service.model_name} on {resolve_device(options.device)}); "
        "Ctrl-C or SIGTERM stops",
        file=sys.stderr,
        flush=True,
    )
    previous = {s: signal.signal(s, stopper.record) for s in STOP_SIGNALS}
    releaser = MemoryReleaser()  # hours of cameras: free heap pages go back every minute
    releaser.start()
    try:
        server.run(sockets=[listener])
    finally:
        releaser.stop()
        stopper.stop_now()
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        print(f"streamdeq serve: stopped{_by(stopper.signum)}", file=sys.stderr, flush=True)
    if stopper.signum is not None:
        end_by_signal(stopper.signum)


def _by(signum: int | None) -> str:
    if signum is None:
        return ""
    try:
        return f" ({signal.Signals(signum).name})"
    except ValueError:
        return f" (signal {signum})"


class _Stopper:
    """Drains the service once, on its own thread, when the first stop signal arrives (the
    signal handler must return at once: uvicorn's loop runs on the same thread)."""

    def __init__(self, service: Service, timeout: float) -> None:
        self.service = service
        self.timeout = timeout
        self.signum: int | None = None
        self.server: Any = None
        self._thread: threading.Thread | None = None

    def record(self, signum: int, frame: Any) -> None:
        """The handler outside uvicorn (SIGHUP, and the signal uvicorn raises again when it
        has shut down)."""
        self.on_signal(signum)
        if self.server is not None:
            self.server.should_exit = True

    def on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.service.stop, args=(self.timeout,), name="drain", daemon=True
            )
            self._thread.start()

    def stop_now(self) -> None:
        """Wait for the drain (or drain now, if the server ended without a signal)."""
        if self._thread is None:
            self.service.stop(self.timeout)
            return
        self._thread.join(self.timeout + 2.0)


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, draining the service as soon as it begins to shut down (so event
        streams end and the shutdown does not wait for them)."""

        def __init__(self, config: Any, stopper: _Stopper) -> None:
            super().__init__(config)
            self.stopper = stopper
            stopper.server = self

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self.stopper.on_signal(sig)

    return Server


def _make_server(config: Any, stopper: _Stopper) -> Any:
    return _server_class()(config, stopper)
