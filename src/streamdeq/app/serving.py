"""``streamdeq serve``: the model, the service, the HTTP app and uvicorn, started and stopped in
the right order.

Order of work: options are checked first (a public bind without a token is refused before
anything loads), then the config file, then the model; the service starts, the command line's
and the config's streams are added (not persisted), the state file's streams come back, and
uvicorn serves. A stop signal (SIGTERM, Ctrl-C, SIGHUP) drains: uvicorn stops accepting, the
service finishes its ticks, closes its sources and its event streams, and the process ends by
the signal (exit 143 for SIGTERM), as ``streamdeq run`` does.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import SettingsError
from ..models.resolve import resolve_model
from ..serve.config import ServeConfig, default_state_file, load_config
from ..serve.service import Service
from ..serve.settings import DEFAULT_SETTINGS, merge_settings
from ..serve.sources import SourceOptions
from .run_options import resolve_device
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
    folder_fps: float = 10.0
    timeout: float = 10.0
    jpeg_quality: int = 80
    threads: int | None = None
    stop_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise SettingsError(
                f"--host {self.host} is reachable from other machines: set a token (--token or "
                "STREAMDEQ_TOKEN) or bind to 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"--port must be 0..65535, got {self.port}")
        merge_settings(DEFAULT_SETTINGS, self.settings)  # the flags' stream settings
        if self.stop_timeout <= 0:
            raise SettingsError(f"--stop-timeout must be > 0, got {self.stop_timeout}")
        resolve_device(self.device)


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only the loopback interface (the security layer's test)."""
    from ..serve.security import is_loopback as loopback

    return loopback(host)


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
    defaults = merge_settings(config.defaults, options.settings)
    state_file = options.state_file or default_state_file(options.config)
    return Service(
        loaded.model,
        device=device,
        max_streams=options.max_streams,
        state_file=state_file,
        defaults=defaults,
        jpeg_quality=options.jpeg_quality,
        source_options=SourceOptions(folder_fps=options.folder_fps, timeout=options.timeout),
        model_name=loaded.description,
    )


def add_startup_streams(service: Service, options: ServeOptions, config: ServeConfig) -> None:
    """The config's and the command line's streams: the operator's own, never persisted."""
    for spec in config.streams:
        service.add_stream(
            spec.source, stream_id=spec.id, settings=spec.settings, loop=spec.loop, persist=False
        )
    for source in options.sources:
        service.add_stream(source, loop=options.loop, persist=False)


def serve(options: ServeOptions, end_by_signal: Callable[[int], Any]) -> None:
    """Run the service behind uvicorn until a stop signal; then drain and end by it."""
    import uvicorn

    from ..serve.http import create_app
    from ..serve.security import DEFAULT_SCHEMES, SourcePolicy

    config = load_config(options.config) if options.config is not None else ServeConfig()
    policy = SourcePolicy(
        media_root=options.media_root,
        allowed_schemes=options.allow_schemes or DEFAULT_SCHEMES,
        allowed_hosts=options.allow_hosts,
    )
    service = build_service(options, config)
    add_startup_streams(service, options, config)
    service.start()
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
            host=options.host,
            port=options.port,
            log_level="warning",
            timeout_graceful_shutdown=int(options.stop_timeout) + 1,
        ),
        stopper,
    )
    previous = {s: signal.signal(s, stopper.record) for s in STOP_SIGNALS}
    try:
        server.run()
    finally:
        stopper.stop_now()
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if stopper.signum is not None:
        end_by_signal(stopper.signum)


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
