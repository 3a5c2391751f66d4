"""The names the rest of the service has always imported from here; the store package holds
them now (``connection_flask.store``), and ``Registry`` is its in-memory store."""

from __future__ import annotations

from connection_flask.store import (
    CallStats,
    Clock,
    Connection,
    EntryView,
    LimitExceeded,
    MemoryStore,
    PublishResult,
    RetractResult,
    Store,
)
from connection_flask.store.expiry import SWEEP_CHUNK, SWEEP_PER_PASS

Registry = MemoryStore

__all__ = [
    "SWEEP_CHUNK",
    "SWEEP_PER_PASS",
    "CallStats",
    "Clock",
    "Connection",
    "EntryView",
    "LimitExceeded",
    "PublishResult",
    "Registry",
    "RetractResult",
    "Store",
]
