"""``streamdeq serve``: many cameras watched by one batched engine, with an HTTP API and a page.

The core (:class:`Service`) reads each source on its own thread (in decoder processes by
default), ticks the streams with a new frame in batched solves, and lets an operator change
each stream's scheme while it runs; the HTTP layer (``streamdeq.serve.http``) puts an API,
metrics and a page in front of it.
"""

from __future__ import annotations

from .config import ServeConfig, StreamSpec, load_config, load_state, save_state
from .errors import (
    ConflictError,
    LimitError,
    NotFoundError,
    ServiceError,
    SourceRejectedError,
    SubscriptionClosed,
)
from .service import Service
from .sources import SourceOptions
from .subscriptions import Subscription

__all__ = [
    "ConflictError",
    "LimitError",
    "NotFoundError",
    "ServeConfig",
    "Service",
    "ServiceError",
    "SourceOptions",
    "SourceRejectedError",
    "StreamSpec",
    "Subscription",
    "SubscriptionClosed",
    "load_config",
    "load_state",
    "save_state",
]
