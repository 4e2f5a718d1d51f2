"""The HTTP API over a test double of the service: every endpoint, its errors, and auth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from streamdeq.serve.http import create_app, dumps
from streamdeq.serve.security import SourcePolicy

from .fakes import JPEG, FakeService, TestClient

BASE = "http://127.0.0.1:8000"
TOKEN = "s3cret-token"


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    (root / "clip.mp4").write_bytes(b"not really a video")
    return root


@pytest.fixture
def service() -> FakeService:
    return FakeService(max_streams=2)


def make_client(service, media: Path, *, token: str | None = None) -> TestClient:
    app = create_app(
        service,
        token=token,
        allowed_hosts=None,
        policy=SourcePolicy(media_root=media),
        loopback=True,
    )
    return TestClient(app, base_url=BASE, raise_server_exceptions=False)


@pytest.fixture
def client(service, media) -> TestClient:
    return make_client(service, media)


def add(client: TestClient, source: str = "clip.mp4", **fields) -> dict:
    response = client.post("/api/streams", json={"source": source, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message


# streams ---------------------------------------------------------------------------------------
def test_add_list_get_and_remove_a_stream(client, service, media):
    info = add(client, id="front", loop=True, settings={"iters": 4})
    assert info["id"] == "front" and info["settings"]["iters"] == 4
    assert service.added[-1] == {
        "source": str((media / "clip.mp4").resolve()),
        "stream_id": "front",
        "loop": True,
    }
    assert [s["id"] for s in client.get("/api/streams").json()] == ["front"]
    assert client.get("/api/streams/front").json()["state"] == "live"
    response = client.delete("/api/streams/front")
    assert response.status_code == 204 and response.content == b""
    assert client.get("/api/streams").json() == []


def test_add_answers_201_with_the_location_of_the_new_stream(client):
    response = client.post("/api/streams", json={"source": "clip.mp4"})
    assert response.status_code == 201
    assert response.headers["location"] == f"/api/streams/{response.json()['id']}"


def test_a_source_that_fails_to_open_shows_failed_with_its_error(client):
    add(client, "missing.mp4", id="gone")
    info = client.get("/api/streams/gone").json()
    assert info["state"] == "failed" and "missing.mp4" in info["error"]


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        (b"{not json", 400, "JSON"),
        (b"", 400, "JSON"),
        (b"[1, 2]", 400, "object"),
        (b'{"source": "clip.mp4", "colour": "red"}', 400, "colour"),
        (b'{"id": "x"}', 400, "source"),
        (b'{"source": 3}', 400, "source"),
        (b'{"source": "clip.mp4", "loop": "yes"}', 400, "loop"),
        (b'{"source": "clip.mp4", "settings": [1]}', 400, "settings"),
    ],
)
def test_a_bad_add_request_is_one_line_of_json(client, service, body, status, word):
    response = client.post(
        "/api/streams", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, status, word)
    assert service.infos == {}


def test_an_oversized_body_is_refused(client):
    response = client.post("/api/streams", content=b"{" + b" " * 70_000 + b"}")
    assert_error(response, 413, "bytes")


def test_bad_settings_on_add_name_the_field(client):
    assert_error(
        client.post("/api/streams", json={"source": "clip.mp4", "settings": {"iters": 0}}),
        400,
        "iters",
    )


def test_a_taken_id_and_too_many_streams_are_conflicts(client):
    add(client, id="a")
    assert_error(client.post("/api/streams", json={"source": "clip.mp4", "id": "a"}), 409, "a")
    add(client, id="b")
    assert_error(client.post("/api/streams", json={"source": "clip.mp4"}), 409, "at most 2")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/streams/nope"),
        ("DELETE", "/api/streams/nope"),
        ("GET", "/api/streams/nope/settings"),
        ("PATCH", "/api/streams/nope/settings"),
        ("GET", "/api/streams/nope/result"),
        ("GET", "/api/streams/nope/overlay.jpg"),
    ],
)
def test_an_unknown_stream_is_404(client, method, path):
    response = client.request(method, path, json={} if method == "PATCH" else None)
    assert_error(response, 404, "nope")


def test_unknown_routes_and_methods_answer_json(client):
    assert_error(client.get("/api/nothing"), 404)
    assert_error(client.get("/static/nothing.js"), 404)
    response = client.put("/api/streams")
    assert_error(response, 405)
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_an_unexpected_error_is_a_500_line_without_traceback(client, service):
    def broken() -> list[dict]:
        raise RuntimeError("engine exploded\nwith details")

    service.streams = broken
    assert_error(client.get("/api/streams"), 500, "internal error")


# settings --------------------------------------------------------------------------------------
def test_settings_are_read_and_patched(client):
    add(client, id="a")
    assert client.get("/api/streams/a/settings").json()["iters"] == 2
    response = client.patch("/api/streams/a/settings", json={"budget_ms": 40.0})
    assert response.status_code == 200
    assert response.json()["budget_ms"] == 40.0 and response.json()["iters"] is None
    assert client.get("/api/streams/a").json()["settings"]["budget_ms"] == 40.0


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({"iters": -1}, 400, "iters"),
        ({"mode": "fast"}, 400, "mode"),
        ({"speed": 3}, 400, "speed"),
        ({"iters": "4"}, 400, "iters"),
        ([1], 400, "object"),
    ],
)
def test_bad_settings_are_refused_and_leave_the_stream_alone(client, body, status, word):
    add(client, id="a")
    assert_error(client.patch("/api/streams/a/settings", json=body), status, word)
    assert client.get("/api/streams/a/settings").json()["iters"] == 2


@pytest.mark.parametrize(
    ("post", "patch"),
    [
        ({"source": "clip.mp4", "colour": "red"}, {"colour": "red"}),  # an unknown field
        ({"source": "clip.mp4", "loop": "yes"}, {"iters": "4"}),  # a wrong type
        ({"source": "clip.mp4", "settings": {"iters": -1}}, {"iters": -1}),  # a bad value
        (["clip.mp4"], ["iters"]),  # not an object
    ],
)
def test_the_same_mistake_gets_the_same_status_on_add_and_on_patch(client, post, patch):
    add(client, id="a")
    added = client.post("/api/streams", json=post)
    patched = client.patch("/api/streams/a/settings", json=patch)
    assert added.status_code == patched.status_code == 400, (added.text, patched.text)


def test_an_over_long_field_name_is_not_echoed_in_full(client):
    response = client.post("/api/streams", json={"source": "clip.mp4", "x" * 5000: 1})
    assert_error(response, 400, "unknown field", "5000 characters")
    assert len(response.json()["error"]) < 200


# results and overlays --------------------------------------------------------------------------
def test_result_and_overlay_before_and_after_the_first_frame(client, service):
    add(client, id="a")
    assert_error(client.get("/api/streams/a/result"), 404, "no result yet")
    assert_error(client.get("/api/streams/a/overlay.jpg"), 404, "no main overlay")
    service.push_result("a", iters=3)
    assert client.get("/api/streams/a/result").json()["iters"] == 3
    response = client.get("/api/streams/a/overlay.jpg")
    assert response.status_code == 200 and response.content == JPEG
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "no-store"
    assert_error(client.get("/api/streams/a/overlay.jpg?lane=compare"), 404, "compare")
    assert_error(client.get("/api/streams/a/overlay.jpg?lane=side"), 400, "lane")


def test_a_non_finite_residual_becomes_null_not_a_500(client, service):
    add(client, id="a")
    service.push_result("a", residual=math.nan, latency_ms=math.inf)
    result = client.get("/api/streams/a/result").json()
    assert result["residual"] is None and result["latency_ms"] is None


def test_dumps_turns_scalars_with_item_into_numbers():
    class Scalar:
        def item(self) -> float:
            return 2.5

    assert json.loads(dumps({"x": Scalar(), "y": (1, math.nan)})) == {"x": 2.5, "y": [1, None]}


def test_summary_and_health(client, service):
    add(client, id="a")
    assert client.get("/api/summary").json()["streams"] == 1
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["live"] == 1
    service.status = "stopping"
    assert client.get("/healthz").status_code == 503


def test_openapi_lists_every_api_path_from_the_docstrings(client):
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert set(paths["/api/streams"]) == {"get", "post"}
    assert set(paths["/api/streams/{stream_id}"]) == {"get", "delete"}
    assert set(paths["/api/streams/{stream_id}/settings"]) == {"get", "patch"}
    for path in ("/api/streams/{stream_id}/overlay.jpg", "/api/events", "/healthz", "/metrics"):
        assert "get" in paths[path], path
    assert "201" in {str(code) for code in paths["/api/streams"]["post"]["responses"]}


def test_the_page_and_its_files_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/app.js" in page.text and "/static/style.css" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


# events ----------------------------------------------------------------------------------------
def parse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_events_carry_a_summary_then_each_result(client, service):
    add(client, id="a")
    first = service.push_result("a", iters=1)
    second = service.push_result("a", iters=5, residual=math.nan)
    service.script = [[first], [], [second]]  # three gets, then the subscription closes
    response = client.get("/api/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    assert events[0][0] == "summary" and events[0][1]["streams"] == 1
    results = [data for kind, data in events if kind == "result"]
    assert [r["iters"] for r in results] == [1, 5]
    assert results[1]["residual"] is None
    assert service.subscriptions == set()  # closed when the stream ended


def test_events_are_refused_beyond_the_client_limit(service, media):
    app = create_app(
        service, token=None, allowed_hosts=None, policy=SourcePolicy(media), loopback=True
    )
    app.state.events.open.update({object(), object()})
    app.state.events.max_clients = 2
    client = TestClient(app, base_url=BASE)
    assert_error(client.get("/api/events"), 503, "at most 2")


# auth ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/streams"),
        ("DELETE", "/api/streams/a"),
        ("PATCH", "/api/streams/a/settings"),
        ("GET", "/api/streams/a/result"),
        ("GET", "/api/streams/a/overlay.jpg"),
        ("GET", "/api/events"),
    ],
)
def test_writes_and_video_need_the_token(service, media, method, path):
    client = make_client(service, media, token=TOKEN)
    service.add_stream("clip.mp4", stream_id="a")
    body = {"source": "clip.mp4"} if method == "POST" else {}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"}):
        response = client.request(method, path, json=body, headers=headers)
        assert_error(response, 401, "token")
        assert response.headers["www-authenticate"] == "Bearer"
    assert_error(client.request(method, path + "?token=wrong", json=body), 401)
    assert "a" in service.infos and service.infos["a"]["settings"]["iters"] == 2


def test_the_right_token_in_a_header_or_the_query_is_accepted(service, media):
    client = make_client(service, media, token=TOKEN)
    response = client.post(
        "/api/streams",
        json={"source": "clip.mp4", "id": "a"},
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 201
    service.push_result("a")
    assert client.get(f"/api/streams/a/overlay.jpg?token={TOKEN}").status_code == 200
    patched = client.patch(f"/api/streams/a/settings?token={TOKEN}", json={"iters": 8})
    assert patched.json()["iters"] == 8


def test_reading_lists_and_settings_needs_no_token(service, media):
    client = make_client(service, media, token=TOKEN)
    service.add_stream("clip.mp4", stream_id="a")
    for path in ("/", "/api/streams", "/api/streams/a", "/api/streams/a/settings", "/healthz"):
        assert client.get(path).status_code == 200, path


# Host and Origin -------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example"])
def test_a_foreign_host_header_is_refused_on_loopback(client, host):
    # the message says where the server is, port included (BASE's 8000)
    assert_error(
        client.get("/api/streams", headers={"host": host}), 421, "host", "http://127.0.0.1:8000/"
    )


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "localhost"])
def test_loopback_host_headers_are_accepted(client, host):
    assert client.get("/api/streams", headers={"host": host}).status_code == 200


def test_allowed_hosts_extend_the_host_check(service, media):
    app = create_app(
        service,
        token=None,
        allowed_hosts=["box.lan"],
        policy=SourcePolicy(media),
        loopback=True,
    )
    client = TestClient(app, base_url=BASE)
    assert client.get("/api/streams", headers={"host": "box.lan:8000"}).status_code == 200
    assert client.get("/api/streams", headers={"host": "other.lan"}).status_code == 421


def test_a_cross_origin_write_is_refused_on_loopback(client, service):
    for origin in ("http://evil.example", "http://localhost:3000", "null"):
        response = client.post(
            "/api/streams", json={"source": "clip.mp4"}, headers={"origin": origin}
        )
        assert_error(response, 403, "cross-origin")
    assert service.infos == {}
    same = client.post("/api/streams", json={"source": "clip.mp4"}, headers={"origin": BASE})
    assert same.status_code == 201


def test_host_and_origin_are_not_checked_off_loopback(service, media):
    app = create_app(
        service, token=TOKEN, allowed_hosts=None, policy=SourcePolicy(media), loopback=False
    )
    client = TestClient(app, base_url="http://cams.example")
    response = client.post(
        "/api/streams",
        json={"source": "clip.mp4"},
        headers={"authorization": f"Bearer {TOKEN}", "origin": "http://other.example"},
    )
    assert response.status_code == 201


# sources through the API -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "../secret.mp4",
        "sub/../../secret.mp4",
        "/etc/passwd",
        "file:/etc/passwd",
        "file:///etc/passwd",
        "concat:clip.mp4|/etc/passwd",
        "subfile:,start,0,end,10,:/etc/passwd",
        "pipe:0",
        "data:video/mp4;base64,AAAA",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_a_rejected_source_never_reaches_the_service(client, service, source):
    assert_error(client.post("/api/streams", json={"source": source}), 400)
    assert service.added == []


def test_a_symlink_out_of_the_media_root_is_rejected(client, service, media, tmp_path):
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"x")
    (media / "link.mp4").symlink_to(outside)
    assert_error(client.post("/api/streams", json={"source": "link.mp4"}), 400, "outside")
    assert service.added == []


def test_an_upper_case_scheme_reaches_the_service_in_lower_case(client, service):
    # FFmpeg's protocol names are case-sensitive: "HTTP" would never open
    add(client, "HTTP://cam.example/live.mp4", id="cam")
    assert service.added[-1]["source"] == "http://cam.example/live.mp4"
    assert_error(client.post("/api/streams", json={"source": "FILE:///etc/passwd"}), 400)
