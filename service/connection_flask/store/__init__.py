"""Where published connections are kept: the interface every store offers, and its values.

``MemoryStore`` keeps them in this process (memory.py, built from entries, index, partition,
limits, expiry and stats); ``RedisStore`` (redis_store.py) keeps them in a Redis that workers and
replicas share, with the same values and the same answers, so the API and admin pages never know
which one they talk to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from connection_flask.matching import Matcher
from connection_flask.store.errors import StoreUnavailable
from connection_flask.store.limits import LimitExceeded, Limits
from connection_flask.store.memory import MemoryStore
from connection_flask.store.redis_store import RedisStore
from connection_flask.store.stats import CallStats
from connection_flask.store.values import (
    Clock,
    Connection,
    EntryView,
    PartitionCount,
    PublishResult,
    RetractResult,
)


@runtime_checkable
class Store(Protocol):
    def publish(self, partition: str, connections: Iterable[Connection]) -> PublishResult:
        """Store the connections, all or none: raises LimitExceeded (storing nothing) if they
        would grow the store past a limit, once what expired past the grace is reclaimed."""

    def lookup(self, partition: str, matcher: Matcher, data_type: str) -> list[bytes] | None:
        """JSON of the live entries of ``data_type`` whose uid matches, in uid order, in a new
        list; None if the partition is unknown."""

    def retract(self, partition: str, uids: Iterable[str]) -> RetractResult: ...

    def retract_partition(self, partition: str) -> bool:
        """Whether the partition was held; it is not any more."""

    def purge(self) -> int:
        """Remove every expired entry now; returns how many."""

    def reset(self) -> None:
        """Forget every partition."""

    def has_partition(self, partition: str) -> bool: ...

    def counts(self) -> tuple[int, int, int]:
        """(partitions, stored entries, live entries), cheap enough for every scrape."""

    def partition_sizes(self) -> list[tuple[str, int]]:
        """Every partition's name and entry count, sorted by name."""

    def page(
        self, partition: str, limit: int, *, after: str | None = None, prefix: str = ""
    ) -> tuple[list[EntryView], bool] | None:
        """Up to ``limit`` entries in uid order from a cursor, expired ones included, and
        whether more follow; None if the partition is unknown."""

    def partition_counts(self) -> tuple[list[PartitionCount], int]:
        """Every partition's live and expired entries, sorted by name, and ``index()`` read
        with them (the admin API's partition list)."""

    # Change indexes and watches (store/changes.py has the rules every store keeps). A shared
    # store keeps the counter where every replica sees it and publishes each change, so that
    # every replica's waits wake; changes.Notifier does the waiting once told.

    def index(self, partition: str | None = None) -> int:
        """The change index of ``partition`` (held or not), or of the whole store: it grows
        with every change of content and never goes back."""

    def wait_change(
        self, partition: str, index: int, timeout: float, stop: Callable[[], bool] = ...
    ) -> int | None:
        """Block until ``index(partition)`` is no longer ``index`` and return the index it
        moved to, or return None when ``timeout`` seconds pass or ``stop()`` holds after a
        wake_waiters. Must not hold a thread under gevent: wait on an Event made at call time
        (changes.py)."""

    def wake_waiters(self) -> None:
        """Wake every wait_change in this process: those whose ``stop()`` holds return."""

    def record_call(self, kind: str, seconds: float) -> None:
        """Count a "publish" or "lookup" call for the statistics page."""

    def stats(self, *, reset: bool = False) -> CallStats: ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now (the readiness probe)."""

    def sweep_once(self, budget: int = ...) -> int:
        """Remove what expired past the grace, looking at up to ``budget`` entries."""

    def start_sweeper(self) -> None: ...

    def stop_sweeper(self) -> None: ...

    @property
    def sweeping(self) -> bool: ...


__all__ = [
    "CallStats",
    "Clock",
    "Connection",
    "EntryView",
    "LimitExceeded",
    "Limits",
    "MemoryStore",
    "PartitionCount",
    "PublishResult",
    "RedisStore",
    "RetractResult",
    "Store",
    "StoreUnavailable",
]
