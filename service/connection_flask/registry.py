"""Partitions of published connections, with TTL, purge and lookup indexes.

Pure Python: no Flask, no I/O. Thread-safety model (CPython with the GIL):
- every write (publish, retract, purge, sweep, reset) holds ``self._lock``;
- lookups take no lock. They read a partition's per-data_type uid list, which writers never
  mutate but replace with a new list, and single ``dict.get`` calls, which are atomic. So a long
  lookup never stalls publishes, and a lookup sees each entry either before or after a write.
"""

from __future__ import annotations

import bisect
import operator
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from connection_flask.matching import Matcher

Clock = Callable[[], float]

# Work a publish does on the background sweep: one entry per connection published (a publish
# adds at most that many), plus a floor, so the sweep always outpaces growth and no request ever
# walks every partition. Measured: at 2 per connection the sweep was 4.4% of a publish.
SWEEP_PER_CONNECTION = 1
SWEEP_FLOOR = 8


class LimitExceeded(Exception):
    """A publish would grow the registry past a configured limit; nothing was stored."""

    def __init__(self, setting: str, limit: int, message: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.limit = limit


class Connection(NamedTuple):
    """One connection as a client publishes it. A tuple: built 20 times per publish, and an
    unchanged republish is recognised by one tuple comparison."""

    uid: str
    uri: str
    data_type: str
    connection_type: int
    capacity: int = 0


class Entry:
    """A stored connection. Replaced, never edited, when its fields change; only ``stamp`` (the
    time of the last publish) is refreshed in place by a republish with the same fields."""

    __slots__ = (
        "capacity",
        "connection",
        "connection_type",
        "data_type",
        "json",
        "stamp",
        "uid",
        "uri",
    )

    def __init__(self, c: Connection, stamp: float) -> None:
        self.connection = c
        self.uid = c.uid
        self.uri = c.uri
        self.data_type = c.data_type
        self.connection_type = c.connection_type
        self.capacity = c.capacity
        self.stamp = stamp
        # Encoded once per change, so a lookup joins bytes; key order is the old server's.
        # Copied: orjson hands back bytes inside a buffer of at least 4 KiB (it sets the
        # length, not the allocation), which at 100k entries held ~400 MB instead of ~15 MB.
        self.json = bytes(
            memoryview(
                orjson.dumps(
                    {
                        "uid": c.uid,
                        "uri": c.uri,
                        "connection_type": c.connection_type,
                        "data_type": c.data_type,
                        "capacity": c.capacity,
                    }
                )
            )
        )


class _Index:
    """One data_type's entries in uid order: a snapshot, replaced whenever the set of entries
    changes (see module doc), so a lookup reads it whole without a lock."""

    __slots__ = ("floor", "jsons", "newline", "rows", "uids")

    def __init__(self, uids: list[str], rows: list[Entry]) -> None:
        self.uids = uids
        self.rows = rows
        self.jsons = [e.json for e in rows]
        # Whether any uid holds a newline, which `.` does not match.
        self.newline = any("\n" in u for u in uids)
        # A lower bound of every row's stamp. Stamps only grow (a republish refreshes one in
        # place), so once set it stays a lower bound; while it is above a lookup's cutoff,
        # every row is live and the answer needs no per-entry check.
        self.floor = min(e.stamp for e in rows)


class _Partition:
    __slots__ = ("entries", "index", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: dict[str, Entry] = {}
        self.index: dict[str, _Index] = {}

    def reindex(
        self,
        added: dict[str, set[str]],
        removed: dict[str, set[str]],
        replaced: Iterable[str] = (),
    ) -> None:
        """Rebuild the index of each data_type that gained or lost uids, or whose entries were
        replaced by new ones (a republish with another uri, connection_type or capacity)."""
        for data_type in added.keys() | removed.keys() | set(replaced):
            old = self.index.get(data_type)
            uids = old.uids if old is not None else []
            gone = removed.get(data_type)
            if gone:
                uids = [u for u in uids if u not in gone]
            new = added.get(data_type)
            if new:
                # Timsort merges the two sorted runs in linear time.
                uids = sorted(uids + sorted(new))
            if uids:
                entries = self.entries
                self.index[data_type] = _Index(uids, [entries[u] for u in uids])
            else:
                self.index.pop(data_type, None)


@dataclass(frozen=True, slots=True)
class PublishResult:
    stored: int
    expired_removed: int


@dataclass(frozen=True, slots=True)
class RetractResult:
    partition_found: bool
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EntryView:
    uid: str
    uri: str
    data_type: str
    connection_type: int
    capacity: int
    age: float
    expired: bool


@dataclass
class CallStats:
    """The old server's statistics page: call counts and time spent, since the last reset."""

    since: float = field(default_factory=time.time)
    publishes: int = 0
    publish_seconds: float = 0.0
    lookups: int = 0
    lookup_seconds: float = 0.0
    max_partitions: int = 0
    max_entries: dict[str, int] = field(default_factory=dict)


class Registry:
    def __init__(
        self,
        ttl: float,
        grace: float,
        *,
        clock: Clock = time.monotonic,
        max_partitions: int = 0,
        max_entries_per_partition: int = 0,
        max_entries: int = 0,
    ) -> None:
        self.ttl = ttl
        self.grace = grace
        self.clock = clock
        self.max_partitions = max_partitions
        self.max_entries_per_partition = max_entries_per_partition
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._parts: dict[str, _Partition] = {}
        self._entries = 0  # stored entries over all partitions, kept by every write
        self._stats = CallStats()
        # Sweep cursor: partitions still to visit this round, and uids left in the current one.
        self._sweep_parts: list[str] = []
        self._sweep_part: str | None = None
        self._sweep_uids: list[str] = []

    # ----------------------------------------------------------------------------- writes

    def publish(self, partition: str, connections: Iterable[Connection]) -> PublishResult:
        conns = list(connections)
        with self._lock:
            now = self.clock()
            part = self._parts.get(partition)
            if part is None:
                if self.max_partitions and len(self._parts) >= self.max_partitions:
                    raise LimitExceeded(
                        "CONNECTION_FLASK_MAX_PARTITIONS",
                        self.max_partitions,
                        f"the registry already holds {len(self._parts)} partitions "
                        f"(CONNECTION_FLASK_MAX_PARTITIONS={self.max_partitions})",
                    )
                part = _Partition(partition)
            entries = part.entries
            # Counting the new uids costs a set per publish; skip it while even "all new" fits.
            might_overflow = (
                self.max_entries_per_partition
                and len(entries) + len(conns) > self.max_entries_per_partition
            ) or (self.max_entries and self._entries + len(conns) > self.max_entries)
            if might_overflow:
                fresh = len({c.uid for c in conns if c.uid not in entries})
                if (
                    self.max_entries_per_partition
                    and len(entries) + fresh > self.max_entries_per_partition
                ):
                    raise LimitExceeded(
                        "CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION",
                        self.max_entries_per_partition,
                        f"partition would hold {len(entries) + fresh} entries "
                        "(CONNECTION_FLASK_MAX_ENTRIES_PER_PARTITION="
                        f"{self.max_entries_per_partition})",
                    )
                if self.max_entries and self._entries + fresh > self.max_entries:
                    raise LimitExceeded(
                        "CONNECTION_FLASK_MAX_ENTRIES",
                        self.max_entries,
                        f"the registry would hold {self._entries + fresh} entries "
                        f"(CONNECTION_FLASK_MAX_ENTRIES={self.max_entries})",
                    )
            self._parts[partition] = part
            added: dict[str, set[str]] = {}
            removed: dict[str, set[str]] = {}
            replaced: set[str] = set()
            for c in conns:
                old = entries.get(c.uid)
                if old is not None and old.connection == c:
                    old.stamp = now
                    continue
                entries[c.uid] = Entry(c, now)
                if old is None:
                    self._entries += 1
                if old is None or old.data_type != c.data_type:
                    added.setdefault(c.data_type, set()).add(c.uid)
                    if old is not None:
                        removed.setdefault(old.data_type, set()).add(c.uid)
                        # The same uid earlier in this publish with old's data_type: it must
                        # not be indexed there after all.
                        added.get(old.data_type, set()).discard(c.uid)
                else:
                    replaced.add(c.data_type)
            if added or removed or replaced:
                part.reindex(added, removed, replaced)
            self._note_sizes(part)
            swept = self._sweep(now, SWEEP_FLOOR + SWEEP_PER_CONNECTION * len(conns))
        return PublishResult(stored=len(conns), expired_removed=swept)

    def retract(self, partition: str, uids: Iterable[str]) -> RetractResult:
        with self._lock:
            part = self._parts.get(partition)
            if part is None:
                return RetractResult(False, ())
            missing: list[str] = []
            removed: dict[str, set[str]] = {}
            for uid in uids:
                entry = part.entries.pop(uid, None)
                if entry is None:
                    missing.append(uid)
                else:
                    self._entries -= 1
                    removed.setdefault(entry.data_type, set()).add(uid)
            part.reindex({}, removed)
            if not part.entries:
                del self._parts[partition]
            return RetractResult(True, tuple(missing))

    def retract_partition(self, partition: str) -> bool:
        with self._lock:
            part = self._parts.pop(partition, None)
            if part is None:
                return False
            self._entries -= len(part.entries)
            return True

    def purge(self) -> int:
        """Remove every expired entry now; partitions stay even if left empty."""
        with self._lock:
            cutoff = self.clock() - self.ttl
            removed = 0
            for part in self._parts.values():
                gone = [e for e in part.entries.values() if e.stamp <= cutoff]
                removed += self._remove(part, gone)
            return removed

    def reset(self) -> None:
        with self._lock:
            self._parts.clear()
            self._entries = 0
            self._sweep_parts, self._sweep_part, self._sweep_uids = [], None, []

    # ----------------------------------------------------------------------------- reads

    def lookup(self, partition: str, matcher: Matcher, data_type: str) -> list[bytes] | None:
        """JSON of live entries matching, sorted by uid, in a new list the caller may change
        (the API edits it in place); None if the partition is unknown."""
        part = self._parts.get(partition)
        if part is None:
            return None
        cutoff = self.clock() - self.ttl
        entries = part.entries
        if matcher.literal is not None:
            e = entries.get(matcher.literal)
            if e is None or e.data_type != data_type or e.stamp <= cutoff:
                return []
            return [e.json]
        index = part.index.get(data_type)
        if index is None:
            return []
        rows, prefix = index.rows, matcher.prefix
        if prefix:
            uids = index.uids
            lo, hi = bisect.bisect_left(uids, prefix), _prefix_end(uids, prefix)
        else:
            lo, hi = 0, len(rows)
        if matcher.any_tail:
            plen, min_tail = len(prefix), matcher.min_tail
            if min_tail == 0 and not index.newline:
                if index.floor <= cutoff and hi - lo == len(rows):
                    # A whole-list answer: one pass over the stamps may show that all are live
                    # again, which then serves every lookup until the oldest stamp expires.
                    index.floor = min(map(_stamp, rows))
                if index.floor > cutoff:
                    return index.jsons[lo:hi]  # `prefix.*`: every row in range matches, all live
            rows = rows[lo:hi]
            if min_tail == 0:
                return [
                    e.json
                    for e in rows
                    if e.stamp > cutoff and ("\n" not in (u := e.uid) or "\n" not in u[plen:])
                ]
            return [
                e.json
                for e in rows
                if e.stamp > cutoff
                and len(u := e.uid) - plen >= min_tail
                and ("\n" not in u or "\n" not in u[plen:])
            ]
        fullmatch = matcher.regex.fullmatch
        return [e.json for e in rows[lo:hi] if e.stamp > cutoff and fullmatch(e.uid) is not None]

    def has_partition(self, partition: str) -> bool:
        return partition in self._parts

    def counts(self) -> tuple[int, int, int]:
        """(partitions, stored entries, live entries) for gauges."""
        with self._lock:
            cutoff = self.clock() - self.ttl
            stored = live = 0
            for part in self._parts.values():
                stored += len(part.entries)
                live += sum(1 for e in part.entries.values() if e.stamp > cutoff)
            return len(self._parts), stored, live

    def snapshot(self) -> list[tuple[str, list[EntryView]]]:
        """Every partition and entry, sorted, for the dump page."""
        with self._lock:
            now = self.clock()
            return [
                (
                    name,
                    [
                        EntryView(
                            e.uid,
                            e.uri,
                            e.data_type,
                            e.connection_type,
                            e.capacity,
                            now - e.stamp,
                            now - e.stamp >= self.ttl,
                        )
                        for _, e in sorted(part.entries.items())
                    ],
                )
                for name, part in sorted(self._parts.items())
            ]

    # ----------------------------------------------------------------------------- stats

    def record_call(self, kind: str, seconds: float) -> None:
        with self._lock:
            if kind == "publish":
                self._stats.publishes += 1
                self._stats.publish_seconds += seconds
            else:
                self._stats.lookups += 1
                self._stats.lookup_seconds += seconds

    def stats(self, *, reset: bool = False) -> CallStats:
        with self._lock:
            current = self._stats
            if reset:
                self._stats = CallStats()
            return current

    # ----------------------------------------------------------------------------- internals

    def _note_sizes(self, part: _Partition) -> None:
        stats = self._stats
        stats.max_partitions = max(stats.max_partitions, len(self._parts))
        peaks = stats.max_entries
        if len(part.entries) > peaks.get(part.name, 0):
            # One line per partition ever seen would grow without bound as partitions come and
            # go: past twice the live count, forget the peaks of partitions that are gone.
            if part.name not in peaks and len(peaks) >= 2 * len(self._parts) + 64:
                for name in [n for n in peaks if n not in self._parts]:
                    del peaks[name]
            peaks[part.name] = len(part.entries)

    def _remove(self, part: _Partition, gone: list[Entry]) -> int:
        removed: dict[str, set[str]] = {}
        for e in gone:
            del part.entries[e.uid]
            self._entries -= 1
            removed.setdefault(e.data_type, set()).add(e.uid)
        part.reindex({}, removed)
        return len(gone)

    def _sweep(self, now: float, budget: int) -> int:
        """Look at up to ``budget`` entries, round-robin over all partitions, and remove those
        expired for longer than the grace period. Called with the lock held."""
        cutoff = now - self.ttl - self.grace
        removed = 0
        while budget > 0:
            if not self._sweep_uids:
                if not self._sweep_parts:
                    if not self._parts:
                        break
                    self._sweep_parts = list(self._parts)
                    budget -= 1  # starting a round costs; an empty registry ends the loop
                self._sweep_part = self._sweep_parts.pop()
                part = self._parts.get(self._sweep_part)
                self._sweep_uids = list(part.entries) if part else []
                budget -= 1
                continue
            part = self._parts.get(self._sweep_part or "")
            chunk = self._sweep_uids[-budget:]
            del self._sweep_uids[-budget:]
            budget -= len(chunk)
            if part is None:
                continue
            gone = [e for uid in chunk if (e := part.entries.get(uid)) and e.stamp <= cutoff]
            if gone:  # nothing to reindex otherwise, and that is almost every publish
                removed += self._remove(part, gone)
        return removed


_stamp = operator.attrgetter("stamp")


def _prefix_end(uids: list[str], prefix: str) -> int:
    """Index just past the last uid starting with prefix in a sorted list."""
    last = ord(prefix[-1])
    if last < 0x10FFFF:
        return bisect.bisect_left(uids, prefix[:-1] + chr(last + 1))
    i = bisect.bisect_left(uids, prefix)
    while i < len(uids) and uids[i].startswith(prefix):
        i += 1
    return i
