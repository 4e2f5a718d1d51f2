"""Push channels of results: each subscriber holds at most the latest result per stream.

Why latest-only: a browser on a slow link, or one that stopped reading, must never make the
service hold a growing queue; what it missed is superseded by what it gets next.
"""

from __future__ import annotations

import threading
from typing import Any

from .errors import SubscriptionClosed


class Subscription:
    """Results that arrived since the last :meth:`get`, the latest per stream."""

    def __init__(self, on_close: Any = None) -> None:
        self._pending: dict[str, dict[str, Any]] = {}
        self._ready = threading.Condition()
        self._closed = False
        self._on_close = on_close

    def offer(self, result: dict[str, Any]) -> None:
        """A new result (the service calls this): it replaces the stream's unread one."""
        with self._ready:
            if self._closed:
                return
            self._pending.pop(result["stream"], None)  # re-inserted last: arrival order
            self._pending[result["stream"]] = result
            self._ready.notify_all()

    def get(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """The unread results (at most one per stream, oldest first); [] after ``timeout``
        seconds without any. Raises SubscriptionClosed once closed (or the service stopped)."""
        with self._ready:
            if not self._pending and not self._closed:
                self._ready.wait(timeout)
            if self._closed:
                raise SubscriptionClosed("the subscription is closed (the service stopped)")
            results, self._pending = list(self._pending.values()), {}
        return results

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End the subscription; a waiting :meth:`get` wakes and raises SubscriptionClosed."""
        with self._ready:
            self._closed = True
            self._pending = {}
            self._ready.notify_all()
        if self._on_close is not None:
            self._on_close(self)
