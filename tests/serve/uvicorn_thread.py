"""A real uvicorn server on a free loopback port, in a thread, for tests that need real sockets
(event streams that clients leave, a browser)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import uvicorn

from .service_helpers import wait_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app, before_exit=None) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL. ``before_exit`` runs first on
    the way out (stopping the service ends open event streams, so the server can shut down)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if before_exit is not None:
            before_exit()
        server.should_exit = True
        thread.join(10)
