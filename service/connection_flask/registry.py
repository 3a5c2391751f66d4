"""The names the rest of the service has always imported from here; the store package holds
them now (``connection_flask.store``), and ``Registry`` is its in-memory store. ``make_store``
builds the store the settings choose."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from connection_flask.settings import Settings
from connection_flask.store import (
    CallStats,
    Clock,
    Connection,
    EntryView,
    LimitExceeded,
    Limits,
    MemoryStore,
    PublishResult,
    RedisStore,
    RetractResult,
    Store,
    StoreUnavailable,
)
from connection_flask.store.expiry import SWEEP_CHUNK, SWEEP_PER_PASS

Registry = MemoryStore


def make_store(
    settings: Settings, *, clock: Clock = time.monotonic, on_expired: Callable[[int], None]
) -> Store:
    """MemoryStore, or RedisStore when CONNECTION_FLASK_STORE is a URL. A test that injects its
    clock moves time by hand and sweeps by hand (sweep_once): a sweeper thread would race its
    assertions, so only the real clock gets one."""
    real = clock is time.monotonic
    limits = Limits(
        settings.max_partitions, settings.max_entries_per_partition, settings.max_entries
    )
    sweeping: dict[str, Any] = {
        "sweep_interval": settings.sweep_interval,
        "background_sweep": real,
        "on_expired": on_expired,
    }
    ttl, grace = settings.entry_ttl, settings.purge_grace
    if settings.store == "memory":
        return MemoryStore(
            ttl,
            grace,
            clock=clock,
            limits=limits,
            **sweeping,
        )
    return RedisStore(
        settings.store,
        ttl,
        grace,
        prefix=settings.store_prefix,
        timeout=settings.store_timeout,
        # The real clock is Redis's own TIME, one for every replica.
        clock=None if real else clock,
        limits=limits,
        **sweeping,
    )


__all__ = [
    "SWEEP_CHUNK",
    "SWEEP_PER_PASS",
    "CallStats",
    "Clock",
    "Connection",
    "EntryView",
    "LimitExceeded",
    "Limits",
    "PublishResult",
    "RedisStore",
    "Registry",
    "RetractResult",
    "Store",
    "StoreUnavailable",
    "make_store",
]
