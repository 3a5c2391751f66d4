"""What the Redis store does besides answering requests: the /stats counters (calls counted in
this process, added to the shared ones in Redis now and then, read back as CallStats) and the
sweeper's pass, which must outlive Redis outages.

Counting each call in Redis would take a second round trip per request; instead each process
adds its counts at most once per FLUSH_SECONDS (on the next call, or from its sweeper), and
before it reads the statistics. A /stats page served by another worker or replica may so miss
the last second of this one's calls; the counts are never lost while Redis is up.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Protocol

from connection_flask.store.errors import StoreUnavailable
from connection_flask.store.expiry import Sweeper
from connection_flask.store.stats import CallCounter, CallStats

log = logging.getLogger("connection_flask")

FLUSH_SECONDS = 1.0

Deltas = tuple[int, float, int, float]


class PendingCalls:
    """Calls recorded here and not yet added in Redis: counted by a CallCounter, as the
    in-memory store counts them, plus what an attempt to add them in Redis handed back."""

    def __init__(self) -> None:
        self._counter = CallCounter()
        self._lock = threading.Lock()
        self._unsent: Deltas = (0, 0.0, 0, 0.0)
        self._flushed = time.monotonic()

    def add(self, kind: str, seconds: float) -> bool:
        """Count a call; returns whether the counts are due to be added in Redis."""
        self._counter.record(kind, seconds)
        return time.monotonic() - self._flushed >= FLUSH_SECONDS

    def take(self) -> Deltas:
        """The counts to add, which are forgotten here (give_back if adding them failed)."""
        counted = self._counter.read(reset=True)
        self._flushed = time.monotonic()
        with self._lock:
            (publishes, publish_seconds, lookups, lookup_seconds), self._unsent = (
                self._unsent,
                (0, 0.0, 0, 0.0),
            )
        return (
            publishes + counted.publishes,
            publish_seconds + counted.publish_seconds,
            lookups + counted.lookups,
            lookup_seconds + counted.lookup_seconds,
        )

    def give_back(self, deltas: Deltas) -> None:
        with self._lock:
            publishes, publish_seconds, lookups, lookup_seconds = self._unsent
            self._unsent = (
                publishes + deltas[0],
                publish_seconds + deltas[1],
                lookups + deltas[2],
                lookup_seconds + deltas[3],
            )

    def after_fork_in_child(self) -> None:
        # Locks another parent thread held at the fork would never be released here, and the
        # parent's unsent counts are the parent's to send.
        self.__init__()  # type: ignore[misc]


def call_stats(stats: list[bytes], peaks: list[bytes]) -> CallStats:
    """CallStats from the HGETALL replies of the stats and peaks hashes."""
    fields = {stats[i].decode(): stats[i + 1] for i in range(0, len(stats), 2)}

    def number(name: str) -> float:
        return float(fields.get(name, b"0"))

    return CallStats(
        since=number("since") or time.time(),
        publishes=int(number("publishes")),
        publish_seconds=number("publish_seconds"),
        lookups=int(number("lookups")),
        lookup_seconds=number("lookup_seconds"),
        max_partitions=int(number("max_partitions")),
        max_entries={peaks[i].decode(): int(peaks[i + 1]) for i in range(0, len(peaks), 2)},
    )


class Passes(Protocol):
    """What the sweeper's pass needs of a RedisStore."""

    name: str
    sweep_interval: float

    def background_pass(self) -> int: ...

    def after_fork_in_child(self) -> None: ...


class Background:
    """The sweeper thread of a RedisStore, and what it calls each interval: a pass that
    outlives Redis outages, said once when one begins and once when it ends. Holds its store
    weakly, as the thread holds this (the store holds this strongly), so a dropped store ends
    the thread."""

    def __init__(self, store: Passes) -> None:
        self._store = weakref.ref(store)
        self._failing = False
        self._lock = threading.Lock()
        self.sweeper: Sweeper | None = None  # the running thread's handle, if any

    def start(self, interval: float) -> None:
        """Start the thread unless one runs in this process."""
        with self._lock:
            if self.sweeper is None:
                self.sweeper = Sweeper()
                self.sweeper.start(self, interval)

    def stop(self) -> None:
        """Let the thread end at its next wake-up."""
        handle, self.sweeper = self.sweeper, None
        if handle is not None:
            handle.stop()

    def sweep_once(self) -> int:
        store = self._store()
        if store is None:
            return 0
        try:
            removed = store.background_pass()
        except StoreUnavailable as exc:
            if not self._failing:
                log.warning("sweeper: %s; trying again every %.1f s", exc, store.sweep_interval)
            self._failing = True
            return 0
        if self._failing:
            log.warning("sweeper: %s answers again", store.name)
            self._failing = False
        return removed

    def after_fork_in_child(self) -> None:
        # The parent's thread does not exist here.
        self.sweeper = None
        self._lock = threading.Lock()
        store = self._store()
        if store is not None:
            store.after_fork_in_child()
