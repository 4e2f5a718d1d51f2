"""A test double of the ``Service`` contract: in memory, no model, results pushed by the test.

It keeps to the contract's shapes (stream info, settings, result, summary, metrics, health) and
its errors, so the HTTP layer can be tested without a model; tests that need the real engine use
``streamdeq.serve.service.Service``.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

from streamdeq.errors import SettingsError
from streamdeq.serve.errors import ConflictError, LimitError, NotFoundError, SubscriptionClosed

with warnings.catch_warnings():
    # starlette 1.x asks for the httpx2 package; httpx (the dev dependency) works the same here
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

__all__ = ["JPEG", "FakeService", "FakeSubscription", "TestClient"]

SETTINGS_DEFAULTS = {
    "mode": "stream",
    "iters": 2,
    "tol": None,
    "budget_ms": None,
    "shot_policy": "keep",
    "compare": None,
}
#: The smallest valid JPEG header bytes are not needed: the API passes bytes through untouched.
JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


def check_settings(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    settings = dict(current)
    for key, value in changes.items():
        if key not in SETTINGS_DEFAULTS:
            raise SettingsError(f"unknown setting {key!r}", field=key)
        if key == "mode" and value not in ("stream", "baseline", "keyframe"):
            raise SettingsError(
                f"mode must be stream, baseline or keyframe, not {value!r}", field=key
            )
        if key == "iters" and value is not None and (type(value) is not int or value < 1):
            raise SettingsError("iters must be a positive integer", field=key)
        settings[key] = value
        if key in ("iters", "tol", "budget_ms") and value is not None:
            for other in {"iters", "tol", "budget_ms"} - {key}:
                settings[other] = None
    return settings


class FakeSubscription:
    """Latest result per stream since the last ``get``, as the contract says."""

    def __init__(self, owner: FakeService, script: list[list[dict]] | None = None) -> None:
        self.owner = owner
        self.pending: dict[str, dict] = {}
        self.closed = False
        self.changed = threading.Condition()
        self.script = list(script) if script is not None else None

    def push(self, result: dict) -> None:
        with self.changed:
            self.pending[result["stream"]] = result
            self.changed.notify_all()

    def get(self, timeout: float | None) -> list[dict]:
        if self.script is not None:  # scripted: each get returns the next batch, then closed
            if not self.script:
                raise SubscriptionClosed("script over")
            return self.script.pop(0)
        with self.changed:
            if not self.pending and not self.closed:
                self.changed.wait(timeout)
            if self.closed:
                raise SubscriptionClosed("subscription closed")
            results, self.pending = list(self.pending.values()), {}
            return results

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        self.owner.subscriptions.discard(self)


class FakeService:
    """In-memory streams; ``push_result`` plays the engine."""

    model_name = "fake-model"
    task = "segmentation"

    def __init__(self, max_streams: int = 4) -> None:
        self.max_streams = max_streams
        self.infos: dict[str, dict] = {}
        self.results: dict[str, dict] = {}
        self.overlays: dict[tuple[str, str], bytes] = {}
        self.subscriptions: set[FakeSubscription] = set()
        self.status = "ok"
        self.ticks = 0
        self.decoder_restarts = 0
        self.added: list[dict] = []  # what add_stream was called with, for the tests to read
        self.script: list[list[dict]] | None = None  # what new subscriptions will yield

    # streams -------------------------------------------------------------------------------
    def add_stream(
        self,
        source: str,
        *,
        stream_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
        loop: bool = False,
        persist: bool = True,
    ) -> dict:
        self.added.append({"source": source, "stream_id": stream_id, "loop": loop})
        stream_id = stream_id or f"cam{len(self.infos) + 1}"
        if stream_id in self.infos:
            raise ConflictError(f"stream {stream_id!r} already exists")
        if len(self.infos) >= self.max_streams:
            raise LimitError(f"at most {self.max_streams} streams; remove one first")
        merged = check_settings(SETTINGS_DEFAULTS, settings or {})
        failed = source.endswith("missing.mp4")
        self.infos[stream_id] = {
            "id": stream_id,
            "source": source,
            "kind": "url" if "://" in source else "file",
            "loop": loop,
            "state": "failed" if failed else "live",
            "error": f"cannot open {source}: no such file" if failed else None,
            "settings": merged,
            "frames": 0,
            "drops": 0,
            "resets": 0,
            "reconnects": 0,
            "fps": 0.0,
            "latency_ms": {"p50": None, "p99": None},
            "lane": "main",
            "size": None,
        }
        return dict(self.infos[stream_id])

    def _info(self, stream_id: str) -> dict:
        if stream_id not in self.infos:
            raise NotFoundError(f"no stream {stream_id!r}")
        return self.infos[stream_id]

    def remove_stream(self, stream_id: str) -> None:
        self._info(stream_id)
        del self.infos[stream_id]
        self.results.pop(stream_id, None)

    def streams(self) -> list[dict]:
        return [dict(info) for info in self.infos.values()]

    def stream(self, stream_id: str) -> dict:
        return dict(self._info(stream_id))

    def settings(self, stream_id: str) -> dict:
        return dict(self._info(stream_id)["settings"])

    def update_settings(self, stream_id: str, changes: Mapping[str, Any]) -> dict:
        info = self._info(stream_id)
        info["settings"] = check_settings(info["settings"], changes)
        return dict(info["settings"])

    # results ------------------------------------------------------------------------------
    def push_result(self, stream_id: str, **fields: Any) -> dict:
        info = self._info(stream_id)
        info["frames"] += 1
        self.ticks += 1
        now = time.time()
        result = {
            "stream": stream_id,
            "frame_index": info["frames"] - 1,
            "processed": info["frames"],
            "timestamp": (info["frames"] - 1) / 25,
            "arrived_at": now,
            "finished_at": now,
            "latency_ms": 12.5,
            "iters": info["settings"]["iters"] or 1,
            "residual": 0.01,
            "shot_change": False,
            "reset": None,
            "drops": info["drops"],
            "summary": {"classes": [{"name": "road", "share": 0.5}]},
            "compare": None,
            **fields,
        }
        self.results[stream_id] = result
        self.overlays[(stream_id, "main")] = JPEG
        for subscription in list(self.subscriptions):
            subscription.push(result)
        return result

    def latest_result(self, stream_id: str) -> dict | None:
        self._info(stream_id)
        return self.results.get(stream_id)

    def latest_overlay(self, stream_id: str, lane: str = "main") -> bytes | None:
        self._info(stream_id)
        return self.overlays.get((stream_id, lane))

    def subscribe(self) -> FakeSubscription:
        subscription = FakeSubscription(self, self.script)
        if self.status == "stopping":
            subscription.closed = True
        self.subscriptions.add(subscription)
        return subscription

    def stop(self) -> None:
        self.status = "stopping"
        for subscription in list(self.subscriptions):
            subscription.close()

    # totals -------------------------------------------------------------------------------
    def summary(self) -> dict:
        return {
            "streams": len(self.infos),
            "live": sum(info["state"] == "live" for info in self.infos.values()),
            "total_fps": 0.0,
            "latency_ms": {"p50": 12.5, "p99": 12.5},
            "tick_ms": {"p50": 10.0, "p99": 10.0},
            "batch_size": {"mean": 1.0, "max": 1},
        }

    def health(self) -> dict:
        return {
            "status": self.status,
            "model_loaded": True,
            "streams": len(self.infos),
            "live": sum(info["state"] == "live" for info in self.infos.values()),
        }

    def metrics(self) -> dict:
        return {
            "streams": {
                stream_id: {
                    "frames": info["frames"],
                    "drops": info["drops"],
                    "resets": info["resets"],
                    "reconnects": info["reconnects"],
                    "lag_frames": 0.0,
                }
                for stream_id, info in self.infos.items()
            },
            "ticks": self.ticks,
            "decoder_restarts": self.decoder_restarts,
            "recent_tick_ms": [10.0] * min(self.ticks, 100),
            "recent_batch_sizes": [1] * min(self.ticks, 100),
        }
