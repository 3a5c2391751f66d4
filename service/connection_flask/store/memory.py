"""The in-memory store: partitions of published connections in this process, with TTL, purge,
limits and lookup indexes. Pure Python: no Flask, no I/O.

Thread-safety model (CPython with the GIL):
- every write (publish, retract, purge, sweep, reset) holds ``self._lock``;
- lookups take no lock. They read a partition's per-data_type index, which writers never
  mutate but replace with a new one, and single ``dict.get`` calls, which are atomic. So a long
  lookup never stalls publishes, and a lookup sees each entry either before or after a write;
- call statistics have a lock of their own (stats.CallCounter), so recording a lookup never
  waits for a writer either.

Under Gunicorn's gevent worker all requests share one thread, so nothing may run long without
yielding. Work that grows with the store (sweeps, purge, reclaiming at a limit, the dump page's
reads) goes in chunks of at most SWEEP_CHUNK entries, holds the lock per chunk only and calls
``time.sleep(0)`` between chunks: gevent then runs other greenlets, threads get the GIL. How
expired entries go away is in the expiry module.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable

from connection_flask.matching import Matcher
from connection_flask.store.changes import Notifier
from connection_flask.store.entries import Entry, uid_of
from connection_flask.store.expiry import SWEEP_CHUNK, SWEEP_PER_PASS, Sweeper, Walk, reclaim_walk
from connection_flask.store.limits import NO_LIMITS, LimitExceeded, Limits
from connection_flask.store.partition import Partitions
from connection_flask.store.stats import CallCounter, CallStats
from connection_flask.store.values import (
    Clock,
    Connection,
    EntryView,
    PartitionCount,
    PublishResult,
    RetractResult,
)


def _never() -> bool:
    return False


class MemoryStore:
    def __init__(
        self,
        ttl: float,
        grace: float,
        *,
        clock: Clock = time.monotonic,
        limits: Limits = NO_LIMITS,
        sweep_interval: float = 1.0,
        background_sweep: bool = False,
        on_expired: Callable[[int], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self.grace = grace
        self.clock = clock
        self.limits = limits
        # Seconds between two passes of the sweeper, and the least time between two reclaims of
        # entries at a limit (so a client at a limit cannot make every publish walk the store).
        self.sweep_interval = sweep_interval
        # Whether the first publish starts a sweeper thread. Off, the owner calls sweep_once.
        self.background_sweep = background_sweep
        # Told how many entries each sweep or reclaim removed (the entries_expired counter).
        self.on_expired = on_expired
        self._lock = threading.Lock()
        self._parts = Partitions(Notifier())
        self._calls = CallCounter()
        self._round: Walk | None = None  # the sweeper's round in progress
        self._sweeper: Sweeper | None = None  # the running sweeper thread's, if any

    # ----------------------------------------------------------------------------- writes

    def publish(self, partition: str, connections: Iterable[Connection]) -> PublishResult:
        conns = list(connections)
        with self._lock:
            refused = self.limits.refusal(self._parts, partition, conns)
            if refused is None:
                self._store(partition, conns)
        if refused is not None:
            self._store_after_reclaim(partition, conns, refused)
        if self._sweeper is None and self.background_sweep:
            self.start_sweeper()
        return PublishResult(len(conns))

    def retract(self, partition: str, uids: Iterable[str]) -> RetractResult:
        with self._lock:
            part = self._parts.by_name.get(partition)
            if part is None:
                return RetractResult(False, ())
            return RetractResult(True, tuple(self._parts.retract(part, uids)))

    def retract_partition(self, partition: str) -> bool:
        with self._lock:
            part = self._parts.by_name.get(partition)
            if part is None:
                return False
            self._parts.drop(part)
            return True

    def purge(self) -> int:
        """Remove every expired entry now, and the partitions that leaves empty. Walks the
        store in chunks (module doc). Returns the number of entries removed."""
        with self._lock:
            walk = Walk(list(self._parts.by_name.values()), 0.0)
        return self._run(walk)

    def reset(self) -> None:
        with self._lock:
            self._parts.clear()
            self._round = None
            self.stop_sweeper()  # a publish starts another

    def _store(self, partition: str, conns: list[Connection]) -> None:
        """Store a publish the limits allow. Called with the lock held."""
        now = self.clock()
        part = self._parts.store(partition, conns, now, now - self.ttl)
        self._calls.note_sizes(self._parts.by_name, partition, len(part.entries))

    def _store_after_reclaim(
        self, partition: str, conns: list[Connection], refused: LimitExceeded
    ) -> None:
        """A publish refused by a limit: reclaim what expired past the grace for that limit,
        then check again, once per limit in the way; raise the refusal if one still stands."""
        tried: set[str] = set()
        while refused.setting not in tried:
            tried.add(refused.setting)
            with self._lock:
                walk = reclaim_walk(
                    self._parts,
                    refused.setting,
                    partition,
                    self.clock(),
                    grace=self.grace,
                    interval=self.sweep_interval,
                )
            if walk is not None:
                self._report(self._run(walk))
            with self._lock:
                again = self.limits.refusal(self._parts, partition, conns)
                if again is None:
                    self._store(partition, conns)
                    return
            refused = again
        raise refused

    # ----------------------------------------------------------------------------- expiry

    def sweep_once(self, budget: int = SWEEP_PER_PASS) -> int:
        """One pass of the sweeper: carry the current round over all partitions on through up to
        ``budget`` entries, removing those expired for longer than the grace and the partitions
        that leaves empty or that are long expired whole. A pass ends where its round ends, so
        a small store is swept whole by each pass. Returns the entries removed (also told to
        on_expired)."""
        with self._lock:
            if self._round is None or self._round.done:
                self._round = Walk(list(self._parts.by_name.values()), self.grace)
            walk = self._round
        return self._report(self._run(walk, budget))

    def start_sweeper(self) -> None:
        """Start the background thread that calls sweep_once every sweep_interval seconds, if
        none is running in this process. Publishes call it: before the first one there is
        nothing to sweep, and in a process forked from one that had a sweeper (Gunicorn's
        --preload) the first publish starts the child's own."""
        with self._lock:
            if self._sweeper is not None:
                return
            sweeper = self._sweeper = Sweeper()
        sweeper.start(self, self.sweep_interval)

    def stop_sweeper(self) -> None:
        """Let the background thread end at its next wake-up."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.stop()

    @property
    def sweeping(self) -> bool:
        return self._sweeper is not None

    def after_fork_in_child(self) -> None:
        # The parent's sweeper thread does not exist here, and a lock another parent thread
        # held at the fork would never be released.
        self._sweeper = None
        self._lock = threading.Lock()
        self._calls.after_fork_in_child()
        self._parts.notifier = Notifier()  # nobody waits in this process yet

    def _run(self, walk: Walk, budget: float = math.inf) -> int:
        """Take ``walk`` to its end, or through ``budget`` entries, a chunk per hold of the lock,
        yielding between chunks (module doc). Returns the entries removed."""
        removed = 0
        while True:
            with self._lock:
                live = self.clock() - self.ttl
                gone, used = walk.step(self._parts, live, int(min(budget, SWEEP_CHUNK)))
            removed += gone
            budget -= used
            if walk.done or budget <= 0:
                return removed
            time.sleep(0)

    def _report(self, removed: int) -> int:
        if removed and self.on_expired is not None:
            self.on_expired(removed)
        return removed

    # ----------------------------------------------------------------------------- reads

    def lookup(self, partition: str, matcher: Matcher, data_type: str) -> list[bytes] | None:
        """JSON of live entries matching, sorted by uid, in a new list the caller may change
        (the API edits it in place); None if the partition is unknown."""
        part = self._parts.by_name.get(partition)
        if part is None:
            return None
        cutoff = self.clock() - self.ttl
        if matcher.literal is not None:
            e = part.entries.get(matcher.literal)
            if e is None or e.data_type != data_type or e.stamp <= cutoff:
                return []
            return [e.json]
        index = part.index.get(data_type)
        return [] if index is None else index.find(matcher, cutoff)

    def has_partition(self, partition: str) -> bool:
        return partition in self._parts.by_name

    def ping(self) -> None:
        """Always ready: the entries are in this process."""

    def counts(self) -> tuple[int, int, int]:
        """(partitions, stored entries, live entries) for the gauges, in O(1). Live entries are
        stored entries less those the sweeper found expired (within the grace) on its last visit
        to their partition: publishes and retracts show at once, expiry within a sweep round."""
        with self._lock:
            parts = self._parts
            stored = parts.entries
            live = min(stored, max(0, stored - parts.expired_seen))
            return len(parts.by_name), stored, live

    def partition_sizes(self) -> list[tuple[str, int]]:
        """Every partition's name and number of entries, sorted by name: O(partitions)."""
        with self._lock:
            sizes = [(name, len(part.entries)) for name, part in self._parts.by_name.items()]
        sizes.sort()
        return sizes

    def page(
        self, partition: str, limit: int, *, after: str | None = None, prefix: str = ""
    ) -> tuple[list[EntryView], bool] | None:
        """The first ``limit`` entries of a partition in uid order, of those whose uid is after
        ``after`` and starts with ``prefix``, and whether more follow; None if the partition is
        unknown. Bisects each data_type's sorted index and merges their heads: O(data_types *
        log(entries) + limit), whatever the partition holds."""
        part = self._parts.by_name.get(partition)
        if part is None:
            return None
        with self._lock:  # the dict of indexes changes size as data_types come and go
            indexes = list(part.index.values())
        heads: list[list[Entry]] = []
        for i, index in enumerate(indexes, 1):
            heads.append(index.head(limit + 1, after, prefix))
            if i % SWEEP_CHUNK == 0:
                time.sleep(0)  # a partition may hold as many data_types as entries
        rows = list(itertools.islice(heapq.merge(*heads, key=uid_of), limit + 1))
        now = self.clock()
        return [e.view(now, self.ttl) for e in rows[:limit]], len(rows) > limit

    def partition_counts(self) -> tuple[list[PartitionCount], int]:
        """Every partition's live and expired entries, sorted by name, and the store's change
        index as of that moment: O(partitions)."""
        with self._lock:
            rows = [
                PartitionCount(name, len(part.entries) - seen, seen)
                for name, part in self._parts.by_name.items()
                for seen in (min(part.expired_seen, len(part.entries)),)
            ]
            index = self._parts.last_index
        rows.sort()
        return rows, index

    # ----------------------------------------------------------------------------- changes

    def index(self, partition: str | None = None) -> int:
        """The change index of ``partition``, or of the whole store (changes.py)."""
        if partition is None:
            return self._parts.last_index
        return self._parts.index_of(partition)

    def wait_change(
        self, partition: str, index: int, timeout: float, stop: Callable[[], bool] = _never
    ) -> int | None:
        return self._parts.notifier.wait(partition, self._parts.index_of, index, timeout, stop=stop)

    def wake_waiters(self) -> None:
        self._parts.notifier.wake_all()

    # ----------------------------------------------------------------------------- stats

    def record_call(self, kind: str, seconds: float) -> None:
        self._calls.record(kind, seconds)

    def stats(self, *, reset: bool = False) -> CallStats:
        """The statistics, a copy its reader may iterate while publishes go on."""
        return self._calls.read(reset=reset)
