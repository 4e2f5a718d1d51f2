"""``/api/events`` over real sockets: a client that leaves is let go, and a shutdown ends the
streams of clients that stay."""

from __future__ import annotations

import httpx

from streamdeq.serve.http import close_event_streams, create_app
from streamdeq.serve.security import SourcePolicy

from .fakes import FakeService
from .service_helpers import wait_for
from .uvicorn_thread import serve_in_thread


def make_app(service: FakeService):
    return create_app(service, token=None, allowed_hosts=None, policy=SourcePolicy(), loopback=True)


def first_event(lines) -> str:
    return next(line for line in lines if line.startswith("event: "))


def test_a_client_that_disconnects_releases_its_subscription():
    service = FakeService()
    app = make_app(service)
    with serve_in_thread(app, before_exit=service.stop) as url:
        with httpx.stream("GET", f"{url}/api/events", timeout=10) as response:
            assert first_event(response.iter_lines()) == "event: summary"
            (subscription,) = app.state.events.open
        wait_for(lambda: not app.state.events.open, "the server to let the client go", 10)
        assert subscription.closed


def test_closing_the_event_streams_ends_them_for_connected_clients():
    service = FakeService()
    service.add_stream("a.mp4", stream_id="a")
    app = make_app(service)
    with serve_in_thread(app, before_exit=service.stop) as url:
        with httpx.stream("GET", f"{url}/api/events", timeout=10) as response:
            lines = response.iter_lines()
            first_event(lines)
            service.push_result("a", iters=7)
            assert first_event(lines) == "event: result"
            close_event_streams(app)
            rest = list(lines)  # ends: the server closed the stream
        assert all("event: result" not in line for line in rest)
        assert httpx.get(f"{url}/api/events", timeout=10).status_code == 503
