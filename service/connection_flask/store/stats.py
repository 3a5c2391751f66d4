"""The old server's statistics page: call counts, time spent and peak sizes since a reset."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace


@dataclass
class CallStats:
    since: float = field(default_factory=time.time)
    publishes: int = 0
    publish_seconds: float = 0.0
    lookups: int = 0
    lookup_seconds: float = 0.0
    max_partitions: int = 0
    max_entries: dict[str, int] = field(default_factory=dict)


class CallCounter:
    """The statistics as a store keeps them, under a lock of their own. Every lookup records
    its call: under the store's write lock a lookup would wait for publishes and sweep chunks,
    which lookups otherwise never do. This lock is held for a few additions only, and a store
    takes it while holding its own lock, never the other way round, so the two cannot deadlock.
    (Plain ``+=`` without a lock is not safe: it reads, adds and writes back in separate
    bytecodes, and a gthread worker's threads would lose counts between them.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = CallStats()

    def record(self, kind: str, seconds: float) -> None:
        with self._lock:
            stats = self._stats
            if kind == "publish":
                stats.publishes += 1
                stats.publish_seconds += seconds
            else:
                stats.lookups += 1
                stats.lookup_seconds += seconds

    def note_sizes(self, held: Collection[str], name: str, entries: int) -> None:
        """Note the partitions ``held`` and that partition ``name`` holds ``entries``."""
        stats = self._stats
        if len(held) <= stats.max_partitions and entries <= stats.max_entries.get(name, 0):
            # No new peak: most publishes end here without the lock. Should a reset swap the
            # statistics meanwhile, this publish counts as one made before the reset.
            return
        with self._lock:
            stats = self._stats
            stats.max_partitions = max(stats.max_partitions, len(held))
            peaks = stats.max_entries
            if entries > peaks.get(name, 0):
                # One line per partition ever seen would grow without bound as partitions come
                # and go: past twice the live count, forget the peaks of partitions that are gone.
                if name not in peaks and len(peaks) >= 2 * len(held) + 64:
                    for gone in [n for n in peaks if n not in held]:
                        del peaks[gone]
                peaks[name] = entries

    def read(self, *, reset: bool = False) -> CallStats:
        """The statistics, a copy its reader may iterate while publishes go on."""
        with self._lock:
            current = self._stats
            if reset:
                self._stats = CallStats()
            return replace(current, max_entries=dict(current.max_entries))

    def after_fork_in_child(self) -> None:
        # A lock another parent thread held at the fork would never be released here.
        self._lock = threading.Lock()
